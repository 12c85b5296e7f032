/**
 * The container engine, as the image and compose tests drive it: the `docker` CLI against whatever engine
 * answers (Debian's dockerd in CI, Docker Desktop on a laptop). No engine is a failure, never a skip: these
 * tests are the only ones that run what ships in a container.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { REPO } from "./compose-broker.js";

const run = promisify(execFile);

/** Every container, volume, network and image a test makes is named with this prefix (and removed by it). */
/**
 * How a device maker runs the image (compose.yaml's hardening: read-only root, no capabilities, no new
 * privileges, an init), on the host network so that the broker and identity provider a test or the bench runs
 * on 127.0.0.1 are reachable without addressing a bridge IP.
 */
export const HARDENED_RUN_FLAGS: readonly string[] = [
  "--network",
  "host",
  "--read-only",
  "--cap-drop",
  "ALL",
  "--security-opt",
  "no-new-privileges",
  "--init",
];

export const TEST_PREFIX = "edge-signin-test";

/** A name no other test run uses: `edge-signin-test-{what}-{pid}-{random}` (lower case, as image tags must be). */
export function uniqueName(what: string): string {
  return `${TEST_PREFIX}-${what}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `docker ...args`; rejects with the command and its stderr when it exits non-zero or outlives `timeoutMs`. */
export async function docker(args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
  return command("docker", args, { timeoutMs });
}

/** Runs a program to completion (a bounded time), rejecting with what it printed when it fails. */
export async function command(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(file, [...args], {
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 64 * 2 ** 20,
      cwd: options.cwd ?? REPO,
      env: options.env ?? process.env,
    });
    return { stdout, stderr };
  } catch (error) {
    const failed = error as { stderr?: string; stdout?: string; code?: number | string; signal?: string };
    const output = `${failed.stderr ?? ""}${failed.stdout ?? ""}`.trim().split("\n").slice(-30).join("\n");
    throw new Error(
      `\`${file} ${args.join(" ")}\` failed (${failed.signal ?? `exit ${String(failed.code)}`}):\n${output}`,
      { cause: error },
    );
  }
}

/** The engine's version; throws, naming the fix, when no engine answers. */
export async function requireEngine(): Promise<string> {
  try {
    return (await docker(["version", "--format", "{{.Server.Version}}"], 20_000)).stdout.trim();
  } catch (error) {
    throw new Error(
      "No container engine answers (`docker version` failed): the image and compose tests run what ships in " +
        "a container and cannot pass without one. Start Docker (Docker Desktop), or install Debian's docker.io " +
        "and run the tests as root, which starts `dockerd` for the run (then docker/stand-ins/build.sh makes " +
        "the base images where no registry answers).",
      { cause: error },
    );
  }
}

/** What an image of another architecture than the engine's is built from (docker/stand-ins/build.sh --arch). */
export interface ImagePlatform {
  /** `docker build --platform`, e.g. linux/arm64. */
  readonly platform: string;
  /**
   * The Dockerfile's NODE_IMAGE for it: the official per-architecture name (arm64v8/node:22-bookworm-slim). This
   * engine's classic builder picks the local image a FROM names whatever `--platform` says (an amd64
   * node:22-bookworm-slim gives an amd64 image, silently), so the base is chosen by name.
   */
  readonly nodeImage: string;
}

/**
 * Builds docker/Dockerfile from the repository root, unchanged, as a device maker does; for `platform`, with only
 * the base image named by a build argument. `--network host` only lets npm in the build stage reach the registry
 * on a machine whose bridge network cannot.
 */
export async function buildImage(tag: string, platform?: ImagePlatform): Promise<void> {
  await docker(
    // --force-rm: a failed step's container goes too; nothing of a test may outlive it.
    [
      "build",
      "--force-rm",
      "--network",
      "host",
      ...(platform
        ? ["--platform", platform.platform, "--build-arg", `NODE_IMAGE=${platform.nodeImage}`]
        : []),
      "-f",
      "docker/Dockerfile",
      "-t",
      tag,
      ".",
    ],
    // A build with a cold cache runs `npm ci` and the whole build; a warm one takes seconds. Under emulation
    // (arm64 on amd64, two cores) a cold build took 2 min on a quiet machine and 8 at load average 15.
    15 * 60_000,
  );
}

/** Image size in bytes, as `docker image inspect` reports it (all layers, shared ones included). */
export async function imageSize(image: string): Promise<number> {
  return Number((await docker(["image", "inspect", "--format", "{{.Size}}", image])).stdout.trim());
}

/**
 * Undo list for a test file: every cleanup runs (the latest first), even after one failed, and the
 * failures are reported together. Nothing a test made in the engine may outlive it.
 */
export class Teardown {
  private readonly steps: Array<() => Promise<unknown>> = [];

  add(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const failures: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, "teardown failed");
  }
}

/** The binfmt_misc handler Debian's qemu-user-static registers for each architecture the tests build for. */
const QEMU_HANDLERS: Readonly<Record<string, string>> = { arm64: "qemu-aarch64", x64: "qemu-x86_64" };

/**
 * Throws, naming what to install, unless binaries of `arch` (Node's name: arm64, x64) can run in this machine's
 * containers: natively, or through an enabled binfmt_misc handler with the F flag (the kernel opens the emulator
 * when it is registered, so it runs inside containers that do not hold it).
 */
export async function requireEmulation(arch: "arm64" | "x64"): Promise<void> {
  if (process.arch === arch) return;
  const handler = QEMU_HANDLERS[arch] ?? "";
  const install =
    "As root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc (where it is not mounted), then " +
    `apt-get install qemu-user-static binfmt-support (or update-binfmts --enable ${handler} where they are installed).`;
  const problem = (what: string) =>
    new Error(`${arch} emulation is missing: ${what}; the ${arch} image cannot be built or run. ${install}`);
  const read = (file: string) => readFile(`/proc/sys/fs/binfmt_misc/${file}`, "utf8").catch(() => undefined);
  if ((await read("status")) === undefined) throw problem("binfmt_misc is not mounted");
  const entry = await read(handler);
  if (entry === undefined) throw problem(`no binfmt_misc handler ${handler} is registered`);
  if (!/^enabled$/m.test(entry)) throw problem(`the binfmt_misc handler ${handler} is disabled`);
  const flags = /^flags: (\S*)$/m.exec(entry)?.[1] ?? "";
  if (!flags.includes("F"))
    throw problem(
      `the binfmt_misc handler ${handler} lacks the F flag (containers cannot reach its emulator): ` +
        "Debian's qemu-user-static registers it with F",
    );
}
