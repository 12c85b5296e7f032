/**
 * Child process of the soak (figure 5): one agent signs in and out `cycles` times. The parent approves
 * each code through the identity provider; this process signs out as soon as it is signed in, and samples
 * heap, RSS and open handles (after a full GC) every `sampleEvery` cycles.
 *
 * To the parent: {type: "sample", cycle, heapMiB, rssMiB, handles, handleTypes}, {type: "done"} or
 * {type: "error", message}.
 */
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { Agent } from "../src/agent.js";
import { loadConfig } from "../src/config/index.js";

interface SoakWorkerInput {
  readonly cycles: number;
  readonly sampleEvery: number;
  readonly env: Record<string, string>;
}

const input = JSON.parse(process.env["BENCH_SOAK_INPUT"] ?? "{}") as SoakWorkerInput;
const send = (message: object) => process.send?.(message);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("soak-worker needs --expose-gc");

const agent = new Agent({ config: loadConfig(input.env), logger: pino({ level: "warn" }) });

function sample(cycle: number): void {
  gc?.();
  gc?.();
  const resources = process.getActiveResourcesInfo();
  const handleTypes: Record<string, number> = {};
  for (const type of resources) handleTypes[type] = (handleTypes[type] ?? 0) + 1;
  const memory = process.memoryUsage();
  send({
    type: "sample",
    cycle,
    at: performance.now(),
    heapMiB: memory.heapUsed / 2 ** 20,
    rssMiB: memory.rss / 2 ** 20,
    handles: resources.length,
    handleTypes,
  });
}

let cycle = 0;
const done = new Promise<void>((resolve, reject) => {
  agent.on("authenticated", () => {
    cycle += 1;
    // Sign out from outside the emit, as a command from the broker would arrive.
    setImmediate(() => {
      agent.signOut().then(
        () => {
          if (cycle % input.sampleEvery === 0) sample(cycle);
          if (cycle >= input.cycles) resolve();
        },
        (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
      );
    });
  });
});

try {
  await agent.start();
  sample(0);
  await done;
  send({ type: "done" });
} catch (error) {
  send({ type: "error", message: error instanceof Error ? error.message : String(error) });
} finally {
  await agent.stop();
  process.disconnect();
}
