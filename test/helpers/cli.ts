import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * The shipped entry point: what `npm start`, the `edge-signin` bin and the image run. test/global-setup.ts
 * builds it (scripts/bundle.ts) once before any test file, so every process a test starts runs the bundle a
 * device maker gets, never the TypeScript source.
 */
export const SHIPPED_BIN = fileURLToPath(new URL("../../dist/bundle/edge-signin.mjs", import.meta.url));

export interface RunningCli {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;
}

/** Starts `edge-signin ...args` as a real process, the way a device maker runs it: the shipped bundle. */
export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, [SHIPPED_BIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  const cli = startCli(args, env);
  const timer = setTimeout(() => cli.child.kill("SIGKILL"), timeoutMs);
  const code = await cli.exited;
  clearTimeout(timer);
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}
