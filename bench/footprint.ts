/**
 * Figure 6: what a device stores. The package as npm would install it (packed tarball, then
 * `npm ci --omit=dev` with the project's lock file), and the bundle, which needs no node_modules at all.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

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
  };
}

async function du(path: string): Promise<number> {
  const { stdout } = await run("du", ["-sk", path]);
  return Number(stdout.split("\t")[0]);
}
