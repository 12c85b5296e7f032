/**
 * The image's start, beside the process figures: from `docker run` (the CLI spawned) to the code on the display at
 * the bench's subscriber, for a first start (a new STATE_DIR volume) and a restart (`docker start` of the same
 * container after `docker stop`: the volume holds what the first start left, as after a device's reboot). The
 * image is docker/Dockerfile built unchanged, run as image.test.ts runs it (non-root, read-only root, no
 * capabilities, an init, host networking to reach the bench's broker and provider on 127.0.0.1). It includes
 * what the engine adds (container set-up, the CLI's round trips), which no process figure has.
 * Then the same for the image built for linux/arm64, run under emulation (qemu-user) on a machine of another
 * architecture: its size over its arm64 base, and its starts, which say how much slower emulation is than the
 * machine's own image in the same run, and nothing about an arm64 board.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { HARDENED_RUN_FLAGS, type ImagePlatform, requireEmulation } from "../test/docker/engine.js";
import { agentEnv } from "./cold-start.js";
import { buildBenchImage, dockerCli, imageMiB } from "./footprint.js";
import type { Bed } from "./lib/bed.js";
import { within } from "./lib/proc.js";
import { summarise, type Summary } from "./lib/stats.js";

const CA_IN_CONTAINER = "/run/edge-signin/idp-ca.pem";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ARM64: ImagePlatform = {
  platform: "linux/arm64",
  nodeImage: process.arch === "arm64" ? "node:22-bookworm-slim" : "arm64v8/node:22-bookworm-slim",
};
/** Emulated rounds: each is several times slower than the machine's own, and the spread is the emulator's. */
const EMULATED_ROUNDS = 5;

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
  /** The image's size over its base, MiB, as the arm64 one's beside it (absent in reports from before it). */
  readonly overBaseMiB?: number;
  /** The linux/arm64 image in the same run (absent in reports from before it). */
  readonly arm64?:
    | { readonly ok: true; readonly value: EmulatedImageStart }
    | { readonly ok: false; readonly error: string };
}

export interface EmulatedImageStart {
  readonly platform: string;
  readonly base: string;
  /** How it ran: natively (an arm64 machine) or through which binfmt_misc emulator. */
  readonly emulated: boolean;
  readonly emulator: string;
  /** The machine's architecture, as Node names it (x64, arm64). */
  readonly hostArch: string;
  readonly baseMiB: number;
  readonly imageMiB: number;
  readonly overBaseMiB: number;
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
  let own: Omit<ImageStartResult, "arm64">;
  try {
    progress("building docker/Dockerfile for the image's start");
    const { engine, base } = await buildBenchImage(tag);
    const overBaseMiB = (await imageMiB(tag)) - (await imageMiB(base));
    const runs = await startRounds(bed, tag, rounds, undefined, progress);
    const of = (start: ImageStartRun["start"]) =>
      summarise(runs.filter((r) => r.start === start).map((r) => r.codeMs));
    own = { engine, base, runs, firstStartMs: of("first start"), restartMs: of("restart"), overBaseMiB };
  } finally {
    await dockerCli(["rmi", "-f", tag]).catch(() => undefined);
  }
  const arm64 = await runArm64(bed, Math.min(rounds, EMULATED_ROUNDS), progress).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      progress(`arm64 image start failed: ${message}`);
      return { ok: false as const, error: message.split("\n")[0] ?? "" };
    },
  );
  return { ...own, arm64 };
}

/** Round 0 warms the engine and the page cache; it is not reported. */
async function startRounds(
  bed: Bed,
  image: string,
  rounds: number,
  platform: ImagePlatform | undefined,
  progress: (line: string) => void,
): Promise<ImageStartRun[]> {
  const runs: ImageStartRun[] = [];
  for (let round = 0; round <= rounds; round++) {
    const [first, again] = await startTwice(bed, image, round, platform);
    if (round > 0) runs.push(first, again);
    if (round > 0)
      progress(`image start${platform ? ` (${platform.platform})` : ""} round ${round}/${rounds}`);
  }
  return runs;
}

/** The linux/arm64 image: its base made where needed (docker/stand-ins/build.sh), built, sized and started. */
async function runArm64(
  bed: Bed,
  rounds: number,
  progress: (line: string) => void,
): Promise<EmulatedImageStart> {
  await requireEmulation("arm64");
  const emulated = process.arch !== "arm64";
  progress("the arm64 base (docker/stand-ins/build.sh --arch arm64 node)");
  await promisify(execFile)("bash", ["docker/stand-ins/build.sh", "--arch", "arm64", "node"], {
    cwd: ROOT,
    timeout: 10 * 60_000,
  }).catch((error: { stderr?: string }) => {
    throw new Error(`not measured: no arm64 base (${(error.stderr ?? "").trim().split("\n").at(-1)})`);
  });
  const tag = `edge-signin-bench-start-arm64:${process.pid}`;
  try {
    progress("building docker/Dockerfile for linux/arm64");
    const { base } = await buildBenchImage(tag, ARM64);
    const [image, baseMiB] = [await imageMiB(tag), await imageMiB(base)];
    const runs = await startRounds(bed, tag, rounds, ARM64, progress);
    const of = (start: ImageStartRun["start"]) =>
      summarise(runs.filter((r) => r.start === start).map((r) => r.codeMs));
    return {
      platform: ARM64.platform,
      base,
      emulated,
      emulator: emulated ? "qemu-user (binfmt_misc qemu-aarch64)" : "none (an arm64 machine)",
      hostArch: process.arch,
      baseMiB,
      imageMiB: image,
      overBaseMiB: image - baseMiB,
      runs,
      firstStartMs: of("first start"),
      restartMs: of("restart"),
    };
  } finally {
    await dockerCli(["rmi", "-f", tag]).catch(() => undefined);
  }
}

async function startTwice(
  bed: Bed,
  image: string,
  round: number,
  platform: ImagePlatform | undefined,
): Promise<[ImageStartRun, ImageStartRun]> {
  const id = `image-${platform ? "arm64-" : ""}${round}-${process.pid}-${Date.now().toString(36)}`;
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
      ...(platform ? ["--platform", platform.platform] : []),
      ...HARDENED_RUN_FLAGS,
      "--volume",
      `${volume}:/var/lib/edge-signin`,
      "--volume",
      `${bed.idp.caFile}:${CA_IN_CONTAINER}:ro`,
      ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
      image,
    ];
    // Emulated, a start takes several times longer; the bound only keeps a broken run from hanging the bench.
    const waitMs = platform ? 180_000 : 60_000;
    const first = await timeToCode(bed, id, runArgs, waitMs);
    await dockerCli(["stop", "--time", "10", name], 30_000);
    bed.watcher.forget(id);
    const again = await timeToCode(bed, id, ["start", name], waitMs);
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
async function timeToCode(
  bed: Bed,
  deviceId: string,
  args: readonly string[],
  waitMs: number,
): Promise<number> {
  const shown = bed.watcher.next("display", deviceId);
  const spawnedAt = performance.now();
  const cli = spawn("docker", [...args], { stdio: "ignore" });
  const failed = new Promise<never>((_, reject) =>
    cli.once("exit", (code) => {
      if (code !== 0) reject(new Error(`docker ${args[0]} exited with ${code}`));
    }),
  );
  const display = await within(Promise.race([shown, failed]), waitMs, `the image's code (${args[0]})`);
  return display.at - spawnedAt;
}
