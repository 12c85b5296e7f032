/**
 * Many agents in a few child processes (test/helpers/fleet-worker.ts, running the shipped library build), for the
 * cluster journey and the cluster storm. Builds `dist/src` first when asked: the bundle that vitest's global set-up
 * builds has no library entry.
 */
import { eventually } from "./eventually.js";
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FleetAgentState } from "./fleet-worker.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORKER = fileURLToPath(new URL("./fleet-worker.ts", import.meta.url));

/** `tsc -p tsconfig.build.json`: the library build the workers load, from the current sources. */
export function buildLibrary(): void {
  const tsc = spawnSync(
    process.execPath,
    [`${ROOT}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"],
    {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    },
  );
  if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`);
}

export interface Fleet {
  /** Starts every agent; resolves when each start() settled, with the failures so far. */
  start(): Promise<string[]>;
  /** Every agent's state as its own status() says, and the sign-in failures so far. */
  status(): Promise<{ states: FleetAgentState[]; failures: string[] }>;
  /** Stops every agent (agent.stop()) and the processes; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** The tail of every worker's stderr (the agents' warnings and errors, pino JSON). */
  stderr(): string;
}

interface WorkerProcess {
  readonly child: ChildProcess;
  next<T>(type: string, timeoutMs: number): Promise<T>;
  stderr(): string;
}

/** Splits `agents` (each an environment) over `processes` child processes and waits until all are built. */
export async function startFleet(
  agents: ReadonlyArray<Readonly<Record<string, string>>>,
  processes: number,
  nodeArgs: readonly string[] = [],
): Promise<Fleet> {
  const shares = Array.from({ length: processes }, (_, p) => agents.filter((_, i) => i % processes === p));
  const workers = shares.map((share) => startWorker(share, nodeArgs));
  const each = async <T>(type: string, timeoutMs: number, message?: string): Promise<T[]> => {
    if (message !== undefined) for (const worker of workers) worker.child.send(message);
    return Promise.all(workers.map((worker) => worker.next<T>(type, timeoutMs)));
  };
  const stop = async (graceMs = 30_000) => {
    await Promise.all(
      workers.map(async (worker) => {
        const exited = new Promise((resolve) => {
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) resolve(undefined);
          else worker.child.once("exit", resolve);
        });
        if (worker.child.connected) worker.child.send("stop");
        const timer = setTimeout(() => worker.child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  };
  try {
    await each("ready", 120_000);
  } catch (error) {
    await stop(0);
    throw error;
  }
  return {
    start: async () =>
      (await each<{ failures: string[] }>("started", 120_000, "start")).flatMap((r) => r.failures),
    status: async () => {
      const reports = await each<{ states: FleetAgentState[]; failures: string[] }>(
        "status",
        10_000,
        "status",
      );
      return { states: reports.flatMap((r) => r.states), failures: reports.flatMap((r) => r.failures) };
    },
    stop,
    stderr: () => workers.map((worker) => worker.stderr()).join("\n"),
  };
}

function startWorker(agents: ReadonlyArray<Readonly<Record<string, string>>>, nodeArgs: readonly string[]) {
  // The input goes through a file: hundreds of agents' environments in one variable pass Linux's 128 KiB limit on a
  // single environment string (spawn E2BIG).
  const inputDir = mkdtempSync(join(tmpdir(), "edge-signin-fleet-input-"));
  const inputFile = join(inputDir, "input.json");
  writeFileSync(inputFile, JSON.stringify({ agents }));
  const child = fork(WORKER, [], {
    execArgv: ["--import", "tsx", ...nodeArgs],
    env: { ...process.env, FLEET_INPUT_FILE: inputFile },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  child.once("exit", () => rmSync(inputDir, { recursive: true, force: true }));
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => (err = (err + chunk.toString("utf8")).slice(-20_000)));
  const queued: Array<{ type: string }> = [];
  const waiters: Array<{ type: string; resolve: (m: { type: string }) => void }> = [];
  child.on("message", (message: { type: string }) => {
    const index = waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) waiters.splice(index, 1)[0]?.resolve(message);
    else queued.push(message);
  });
  const worker: WorkerProcess = {
    child,
    stderr: () => err,
    next: <T>(type: string, timeoutMs: number) => {
      const index = queued.findIndex((m) => m.type === type);
      if (index >= 0) return Promise.resolve(queued.splice(index, 1)[0] as T);
      return new Promise<T>((resolve, reject) => {
        const waiter = { type, resolve: (m: { type: string }) => (clearTimeout(timer), resolve(m as T)) };
        const fail = (why: string) => {
          const at = waiters.indexOf(waiter);
          if (at >= 0) waiters.splice(at, 1);
          reject(new Error(`fleet worker: no "${type}" (${why}):\n${err.slice(-4_000)}`));
        };
        const timer = setTimeout(() => fail(`${timeoutMs} ms`), timeoutMs);
        child.once("exit", (code, signal) => fail(`exited ${String(code ?? signal)}`));
        waiters.push(waiter);
      });
    },
  };
  return worker;
}

/** Polls `read` until it returns a value, every 100 ms, for at most `timeoutMs`; fails naming `what`. */
export function until<T>(read: () => T | undefined, what: () => string, timeoutMs: number): Promise<T> {
  return eventually(read, what, timeoutMs, 100);
}
