/**
 * Figure 5: the soak. One agent (a child process) signs in and out `cycles` times against a provider with a
 * short polling interval, so a thousand cycles take minutes, not a quarter of an hour. The child samples its
 * heap and RSS after a full GC and counts its open handles; drift is measured from the end of a warm-up
 * (the first tenth of the cycles: JIT, caches and pools fill up once) to the end.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Bed } from "./lib/bed.js";
import { TOPIC_PREFIX } from "./lib/bed.js";
import { within } from "./lib/proc.js";
import { startWorker } from "./lib/worker.js";

export interface SoakSample {
  readonly cycle: number;
  readonly heapMiB: number;
  readonly rssMiB: number;
  readonly handles: number;
  readonly handleTypes: Record<string, number>;
}

export interface SoakResult {
  readonly cycles: number;
  readonly completed: number;
  readonly durationS: number;
  readonly warmupCycles: number;
  readonly samples: readonly SoakSample[];
  /** Relative change from the warm-up sample to the last, %. */
  readonly heapDriftPct: number;
  readonly rssDriftPct: number;
  readonly handlesAtWarmup: number;
  readonly handlesAtEnd: number;
  readonly error: string | undefined;
}

export async function runSoak(
  bed: Bed,
  cycles: number,
  progress: (line: string) => void,
): Promise<SoakResult> {
  const deviceId = `soak-${Date.now().toString(36)}`;
  const sampleEvery = Math.max(1, Math.floor(cycles / 50));
  const worker = startWorker(
    "soak-worker.ts",
    {
      BENCH_SOAK_INPUT: JSON.stringify({
        cycles,
        sampleEvery,
        env: {
          EDGE_SIGNIN_AUTHORITY: bed.idp.authority,
          EDGE_SIGNIN_CLIENT_ID: bed.idp.clientId,
          EDGE_SIGNIN_DEVICE_ID: deviceId,
          EDGE_SIGNIN_TOPIC_PREFIX: TOPIC_PREFIX,
          EDGE_SIGNIN_MQTT_URL: bed.broker.url,
          EDGE_SIGNIN_STATE_DIR: join(bed.scratch, deviceId),
          EDGE_SIGNIN_IDP_CA_FILE: bed.idp.caFile,
          EDGE_SIGNIN_LOG_LEVEL: "warn",
        },
      }),
    },
    ["--expose-gc"],
  );
  const samples: SoakSample[] = [];
  worker.on<SoakSample & { type: string }>("sample", (sample) => {
    samples.push(sample);
    if (sample.cycle > 0 && sample.cycle % (sampleEvery * 10) === 0)
      progress(`soak: ${sample.cycle}/${cycles} cycles`);
  });
  let error: string | undefined;
  const finished = Promise.race([
    worker.next("done").then(() => undefined),
    worker.next<{ type: string; message: string }>("error").then((e) => {
      error = e.message;
    }),
  ]);
  const startedAt = performance.now();
  // The person: approve every new code as soon as it is on the display.
  let approving = true;
  const approvals = (async () => {
    const used = new Set<string>();
    while (approving) {
      const display = await bed.watcher.next("display", deviceId);
      const userCode = String(display.payload["userCode"]);
      if (used.has(userCode)) continue;
      used.add(userCode);
      await bed.idp.approve(userCode, "soak").catch(() => undefined);
    }
  })();
  try {
    await within(
      finished.catch(() => undefined),
      Math.max(600_000, cycles * 2_000),
      `${cycles} soak cycles`,
    );
  } catch (timeout) {
    error = String(timeout);
  } finally {
    approving = false;
    // The worker stops its agent and leaves by itself; a stuck one is not waited for.
    await within(worker.exited, 15_000, "soak worker exit").catch(() => worker.child.kill("SIGKILL"));
  }
  void approvals; // ends with the next display, or never: the watcher is closed with the bed
  const durationS = (performance.now() - startedAt) / 1000;
  const warmupCycles = Math.max(sampleEvery, Math.round(cycles / 10));
  const warm = samples.find((s) => s.cycle >= warmupCycles) ?? samples[0];
  const last = samples[samples.length - 1];
  const drift = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? Number.NaN : ((b - a) / a) * 100;
  return {
    cycles,
    completed: last?.cycle ?? 0,
    durationS,
    warmupCycles: warm?.cycle ?? 0,
    samples,
    heapDriftPct: drift(warm?.heapMiB, last?.heapMiB),
    rssDriftPct: drift(warm?.rssMiB, last?.rssMiB),
    handlesAtWarmup: warm?.handles ?? 0,
    handlesAtEnd: last?.handles ?? 0,
    error,
  };
}
