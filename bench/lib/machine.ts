import { execFileSync } from "node:child_process";
import { cpus, freemem, loadavg, totalmem } from "node:os";

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly freeMemoryGiB: number;
  readonly loadAverage: readonly number[];
  readonly node: string;
  readonly platform: string;
  readonly openFileLimit: string;
  readonly mosquitto: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? "unknown",
    cores: list.length,
    memoryGiB: round(totalmem() / 2 ** 30),
    freeMemoryGiB: round(freemem() / 2 ** 30),
    loadAverage: loadavg().map(round),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    openFileLimit: shell("sh", ["-c", "ulimit -n"]),
    mosquitto: shell("sh", ["-c", "mosquitto -h 2>&1 | head -1 || /usr/sbin/mosquitto -h 2>&1 | head -1"]),
  };
}

function shell(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, {
      encoding: "utf8",
      env: { ...process.env, PATH: `${process.env["PATH"] ?? ""}:/usr/sbin` },
    }).trim();
  } catch {
    return "unknown";
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
