import { readFileSync } from "node:fs";

/**
 * When process `pid` started, as Linux records it (field 22 of its main thread's stat, clock ticks since boot):
 * with the pid, it names one process for good, where a pid alone is reused after the process dies. Undefined when
 * the process does not exist or /proc is not there.
 * The main thread's /proc/{pid}/task/{pid}/stat, not /proc/{pid}/stat: the same start time, but an emulator
 * (qemu-user, running an image of another architecture) answers a process's reads of its own /proc/{pid}/stat with
 * a start time of its own making, later than the kernel's that every other process reads, and the agent's health
 * check would then take the agent for a stranger holding its pid.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ")"; the fields after the last ")" are plain.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Field 3 (state) is fields[0], so field 22 (starttime) is fields[19].
  return fields[19];
}

/** True when /proc can be read here (Linux): then a pid's start time can be checked. */
export function hasProcfs(): boolean {
  return processStartTime(process.pid) !== undefined;
}

/**
 * The kernel's id of this boot (a random UUID made at every boot, the same in every container on the host), or
 * undefined without /proc. A process named with another boot's id is gone, whatever pid is alive now.
 */
export function bootId(): string | undefined {
  try {
    const id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    return id === "" ? undefined : id;
  } catch {
    return undefined;
  }
}

/**
 * Clock ticks per second of /proc's times (USER_HZ): 100 on every architecture Linux runs on today; the kernel
 * keeps it fixed for user space whatever its internal tick rate.
 */
const USER_HZ = 100;

/** When process `pid` started, in ms since the epoch (boot time plus its start time), or undefined without /proc. */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = processStartTime(pid);
  if (ticks === undefined) return undefined;
  let stat: string;
  try {
    stat = readFileSync("/proc/stat", "utf8");
  } catch {
    return undefined;
  }
  const btime = /^btime (\d+)$/m.exec(stat)?.[1];
  if (btime === undefined) return undefined;
  return Number(btime) * 1000 + (Number(ticks) * 1000) / USER_HZ;
}
