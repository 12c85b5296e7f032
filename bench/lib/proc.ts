import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** Resident set size of a live process, in MiB, from /proc (what `top` shows as RES). */
export function rssMiB(pid: number): number {
  return statusField(pid, "VmRSS") / 1024;
}

/** Peak resident set size of a live process, in MiB. */
export function peakRssMiB(pid: number): number {
  return statusField(pid, "VmHWM") / 1024;
}

function statusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!match?.[1]) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}

export interface Spawned {
  readonly child: ChildProcess;
  /** performance.now() just before spawn(). */
  readonly spawnedAt: number;
  /** Resolves with performance.now() when a stdout line matches. */
  line(pattern: RegExp): Promise<number>;
  output(): string;
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnNode(args: string[], env: Record<string, string>): Spawned {
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: Array<{ pattern: RegExp; resolve: (at: number) => void }> = [];
  child.stdout?.on("data", (chunk: Buffer) => {
    const at = performance.now();
    out += chunk.toString("utf8");
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(out)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(at);
      }
    }
  });
  child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return {
    child,
    spawnedAt,
    output: () => `${out}\n--- stderr ---\n${err}`,
    line: (pattern) =>
      pattern.test(out)
        ? Promise.resolve(performance.now())
        : new Promise<number>((resolve) => waiters.push({ pattern, resolve })),
    exited,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Rejects after `ms` with a message that says what was awaited, so a stuck run explains itself. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
