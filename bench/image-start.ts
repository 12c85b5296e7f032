/**
 * The image's start, beside the process figures: from `docker run` (the CLI spawned) to the code on the display at
 * the bench's subscriber, for a first start (a new STATE_DIR volume) and a restart (`docker start` of the same
 * container after `docker stop`: the volume holds what the first start left, as after a device's reboot). The
 * image is docker/Dockerfile built unchanged, run as image.test.ts runs it (non-root, read-only root, no
 * capabilities, an init, host networking to reach the bench's broker and provider on 127.0.0.1). It includes
 * what the engine adds (container set-up, the CLI's round trips), which no process figure has.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { HARDENED_RUN_FLAGS } from "../test/docker/engine.js";
import { agentEnv } from "./cold-start.js";
import { buildBenchImage, dockerCli } from "./footprint.js";
import type { Bed } from "./lib/bed.js";
import { within } from "./lib/proc.js";
import { summarise, type Summary } from "./lib/stats.js";

const CA_IN_CONTAINER = "/run/edge-signin/idp-ca.pem";

export interface ImageStartRun {
  readonly round: number;
  readonly start: "first start" | "restart";
  /** `docker run` / `docker start` spawned to the code at the subscriber, ms. */
  readonly codeMs: number;
}

export interface ImageStartResult {
  readonly engine: string;
  readonly base: string;
  readonly runs: readonly ImageStartRun[];
  readonly firstStartMs: Summary;
  readonly restartMs: Summary;
}

export async function runImageStart(
  bed: Bed,
  rounds: number,
  progress: (line: string) => void,
): Promise<ImageStartResult> {
  const tag = `edge-signin-bench-start:${process.pid}`;
  try {
    progress("building docker/Dockerfile for the image's start");
    const { engine, base } = await buildBenchImage(tag);
    const runs: ImageStartRun[] = [];
    // Round 0 warms the engine and the page cache; it is not reported.
    for (let round = 0; round <= rounds; round++) {
      const [first, again] = await startTwice(bed, tag, round);
      if (round > 0) runs.push(first, again);
      if (round > 0) progress(`image start round ${round}/${rounds}`);
    }
    const of = (start: ImageStartRun["start"]) =>
      summarise(runs.filter((r) => r.start === start).map((r) => r.codeMs));
    return { engine, base, runs, firstStartMs: of("first start"), restartMs: of("restart") };
  } finally {
    await dockerCli(["rmi", "-f", tag]).catch(() => undefined);
  }
}

async function startTwice(bed: Bed, image: string, round: number): Promise<[ImageStartRun, ImageStartRun]> {
  const id = `image-${round}-${process.pid}-${Date.now().toString(36)}`;
  const name = `edge-signin-bench-${id}`;
  const volume = `${name}-state`;
  const env = agentEnv(bed, id, "");
  delete (env as Record<string, string | undefined>)["EDGE_SIGNIN_STATE_DIR"];
  env["NODE_EXTRA_CA_CERTS"] = CA_IN_CONTAINER;
  try {
    await dockerCli(["volume", "create", volume]);
    const runArgs = [
      "run",
      "--detach",
      "--name",
      name,
      ...HARDENED_RUN_FLAGS,
      "--volume",
      `${volume}:/var/lib/edge-signin`,
      "--volume",
      `${bed.idp.caFile}:${CA_IN_CONTAINER}:ro`,
      ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
      image,
    ];
    const first = await timeToCode(bed, id, runArgs);
    await dockerCli(["stop", "--time", "10", name], 30_000);
    bed.watcher.forget(id);
    const again = await timeToCode(bed, id, ["start", name]);
    return [
      { round, start: "first start", codeMs: first },
      { round, start: "restart", codeMs: again },
    ];
  } finally {
    await dockerCli(["rm", "-f", "-v", name]).catch(() => undefined);
    await dockerCli(["volume", "rm", "-f", volume]).catch(() => undefined);
  }
}

/** Spawns `docker ...args` and waits for the device's code at the subscriber; ms from the spawn. */
async function timeToCode(bed: Bed, deviceId: string, args: readonly string[]): Promise<number> {
  const shown = bed.watcher.next("display", deviceId);
  const spawnedAt = performance.now();
  const cli = spawn("docker", [...args], { stdio: "ignore" });
  const failed = new Promise<never>((_, reject) =>
    cli.once("exit", (code) => {
      if (code !== 0) reject(new Error(`docker ${args[0]} exited with ${code}`));
    }),
  );
  const display = await within(Promise.race([shown, failed]), 60_000, `the image's code (${args[0]})`);
  return display.at - spawnedAt;
}
