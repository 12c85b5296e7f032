import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A TypeScript child process of the bench (run through tsx) that talks over IPC. */
export interface Worker {
  readonly child: ChildProcess;
  /** The next IPC message of this type. */
  next<T extends { type: string }>(type: string): Promise<T>;
  /** Every IPC message of this type, as it comes. */
  on<T extends { type: string }>(type: string, listener: (message: T) => void): void;
  send(message: string): void;
  readonly exited: Promise<number | string>;
  stderr(): string;
}

export function startWorker(script: string, env: Record<string, string>, nodeArgs: string[] = []): Worker {
  const child = fork(fileURLToPath(new URL(`../${script}`, import.meta.url)), [], {
    execArgv: ["--import", "tsx", ...nodeArgs],
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => (err = (err + chunk.toString("utf8")).slice(-20_000)));
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  const listeners = new Map<string, Array<(message: { type: string }) => void>>();
  child.on("message", (message: { type?: string }) => {
    for (const listener of listeners.get(message.type ?? "") ?? []) listener(message as { type: string });
  });
  const on = <T extends { type: string }>(type: string, listener: (message: T) => void) => {
    listeners.set(type, [...(listeners.get(type) ?? []), listener as (message: { type: string }) => void]);
  };
  return {
    child,
    on,
    next: <T extends { type: string }>(type: string) =>
      new Promise<T>((resolve, reject) => {
        let settled = false;
        on<T>(type, (message) => {
          if (settled) return;
          settled = true;
          resolve(message);
        });
        void exited.then((code) => {
          if (!settled) reject(new Error(`${script} exited (${String(code)}) before "${type}":\n${err}`));
        });
      }),
    send: (message) => child.send(message),
    exited,
    stderr: () => err,
  };
}
