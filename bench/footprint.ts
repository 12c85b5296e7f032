/**
 * Figure 6: what a device stores. The package as npm would install it (packed tarball, then
 * `npm ci --omit=dev` with the project's lock file), the bundle, which needs no node_modules at all, and the
 * image built from docker/Dockerfile, measured over its base image.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import type { ImagePlatform } from "../test/docker/engine.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface FootprintResult {
  readonly tarballKiB: number;
  /** node_modules of `npm ci --omit=dev`, KiB (du, on disk). */
  readonly productionDependenciesKiB: number;
  readonly productionPackages: number;
  /** The installed package itself (dist/, README, package.json), KiB. */
  readonly packageKiB: number;
  /** dist/bundle without source maps and licence files: all the agent needs besides Node, KiB. */
  readonly bundleKiB: number;
  readonly bundleFiles: number;
  /** What `edge-signin agent` loads of it: the launcher and the agent's own bundle, KiB. */
  readonly agentKiB: number;
  /**
   * The image, or why it was not measured (no container engine answered, the build failed). Absent in reports
   * written before the image was measured.
   */
  readonly image?:
    { readonly ok: true; readonly value: ImageFootprint } | { readonly ok: false; readonly error: string };
}

export interface ImageFootprint {
  /** The engine that built it (`docker version`'s server version). */
  readonly engine: string;
  /** The Dockerfile's base image (its `NODE_IMAGE` default) and the two sizes `docker image inspect` reports, MiB. */
  readonly base: string;
  readonly baseMiB: number;
  readonly imageMiB: number;
  /** imageMiB - baseMiB: what the image adds to a base the device may already hold. */
  readonly overBaseMiB: number;
}

export async function measureFootprint(scratch: string, bundleDir: string): Promise<FootprintResult> {
  const dir = join(scratch, "footprint");
  await mkdir(dir, { recursive: true });
  // Scripts are skipped: `prepare` would compile again; dist/ is already built by the bench.
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
    cwd: ROOT,
    maxBuffer: 64 * 2 ** 20,
  });
  const packed = (JSON.parse(stdout) as Array<{ filename: string; size: number }>)[0];
  if (!packed) throw new Error("npm pack printed no tarball");
  const app = join(dir, "app");
  await mkdir(app, { recursive: true });
  await run("tar", ["-xzf", join(dir, packed.filename), "-C", app, "--strip-components=1"]);
  await copyFile(join(ROOT, "package-lock.json"), join(app, "package-lock.json"));
  await run("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: app,
    maxBuffer: 64 * 2 ** 20,
  });
  const productionDependenciesKiB = await du(join(app, "node_modules"));
  const { stdout: list } = await run("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: app }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? "" }),
  );
  const bundleFiles = (await readdir(bundleDir, { recursive: true })).filter(
    (f) => f.endsWith(".mjs") || f.endsWith(".cjs"),
  );
  let bundleBytes = 0;
  for (const file of bundleFiles) bundleBytes += (await stat(join(bundleDir, file))).size;
  return {
    tarballKiB: packed.size / 1024,
    productionDependenciesKiB,
    productionPackages: list.split("\n").filter(Boolean).length - 1,
    packageKiB: (await du(app)) - productionDependenciesKiB,
    bundleKiB: bundleBytes / 1024,
    bundleFiles: bundleFiles.length,
    agentKiB:
      ((await stat(join(bundleDir, "edge-signin.mjs"))).size +
        (await stat(join(bundleDir, "agent.cjs"))).size) /
      1024,
    image: await measureImage().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({
        ok: false as const,
        error: error instanceof Error ? error.message : String(error),
      }),
    ),
  };
}

/**
 * Builds docker/Dockerfile unchanged (`--network host` only so npm in the build reaches the registry where the
 * engine's bridge network cannot), reads its size and its base image's, and removes the tag again. Rejects with
 * one line when no engine answers, so the report can say so in the image's row.
 */
async function measureImage(): Promise<ImageFootprint> {
  const tag = `edge-signin-bench:${process.pid}`;
  try {
    const { engine, base } = await buildBenchImage(tag);
    const [image, baseMiB] = [await imageMiB(tag), await imageMiB(base)];
    return { engine, base, baseMiB, imageMiB: image, overBaseMiB: image - baseMiB };
  } finally {
    await dockerCli(["rmi", "-f", tag]).catch(() => undefined);
  }
}

/** `docker ...args` from the repository root; resolves with its trimmed stdout. */
export function dockerCli(args: readonly string[], timeout = 60_000): Promise<string> {
  return run("docker", [...args], { cwd: ROOT, timeout, maxBuffer: 64 * 2 ** 20 }).then((r) =>
    r.stdout.trim(),
  );
}

/**
 * Builds docker/Dockerfile unchanged as `tag` (the caller removes it); for `platform`, another architecture's,
 * with only its base named by NODE_IMAGE (test/docker/engine.ts says why). Rejects with one line starting "not
 * measured:" when no engine answers or the build fails, so the report can say so where the figure would be.
 */
export async function buildBenchImage(
  tag: string,
  platform?: ImagePlatform,
): Promise<{ engine: string; base: string }> {
  const engine = await dockerCli(["version", "--format", "{{.Server.Version}}"], 20_000).catch(() => {
    throw new Error("not measured: no engine (`docker version` did not answer)");
  });
  const dockerfile = await readFile(join(ROOT, "docker/Dockerfile"), "utf8");
  const base = platform?.nodeImage ?? /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  if (!base) throw new Error("not measured: docker/Dockerfile has no `ARG NODE_IMAGE=` default");
  const platformArgs = platform
    ? ["--platform", platform.platform, "--build-arg", `NODE_IMAGE=${platform.nodeImage}`]
    : [];
  await dockerCli(
    [
      "build",
      "--force-rm",
      "--network",
      "host",
      "-q",
      ...platformArgs,
      "-f",
      "docker/Dockerfile",
      "-t",
      tag,
      ".",
    ],
    15 * 60_000,
  ).catch((error: { stderr?: string }) => {
    throw new Error(
      `not measured: the image did not build (${(error.stderr ?? "").trim().split("\n").at(-1)})`,
    );
  });
  return { engine, base };
}

/** `docker image inspect`'s size of `image`, MiB. */
export async function imageMiB(image: string): Promise<number> {
  return Number(await dockerCli(["image", "inspect", "--format", "{{.Size}}", image])) / 2 ** 20;
}

async function du(path: string): Promise<number> {
  const { stdout } = await run("du", ["-sk", path]);
  return Number(stdout.split("\t")[0]);
}
