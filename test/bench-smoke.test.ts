/**
 * Keeps `npm run bench` working: runs it in quick mode (tiny counts) into a temp directory and checks that every
 * figure was measured and reported. It times nothing and asserts no target: the benchmark is not a test.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// Quick mode still builds the bundle, starts a broker and a provider, and spawns a dozen processes; the
// machine may be busy with other suites.
const BENCH_TIMEOUT_MS = 10 * 60_000;

async function mtime(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.mtimeMs,
    () => undefined,
  );
}

describe("npm run bench -- --quick", () => {
  let out: string;
  let stderr = "";
  let exitCode: number | undefined;
  let committedReportBefore: number | undefined;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), "edge-signin-bench-smoke-"));
    committedReportBefore = await mtime(join(ROOT, "bench", "results", "latest.md"));
    try {
      const result = await promisify(execFile)("npm", ["run", "bench", "--", "--quick", "--out", out], {
        cwd: ROOT,
        timeout: BENCH_TIMEOUT_MS,
        maxBuffer: 32 * 2 ** 20,
      });
      stderr = result.stderr;
      exitCode = 0;
    } catch (error) {
      const failed = error as { code?: number; stderr?: string };
      stderr = failed.stderr ?? String(error);
      exitCode = failed.code ?? -1;
    }
  }, BENCH_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it("exits 0, having measured every figure", () => {
    expect(exitCode, stderr.slice(-4000)).toBe(0);
  });

  it("writes a JSON report with every figure and the targets beside them", async () => {
    const results = JSON.parse(await readFile(join(out, "latest.json"), "utf8")) as Record<string, unknown>;
    expect(results).toMatchObject({
      options: { quick: true },
      machine: { cores: expect.any(Number), node: process.version },
      coldStart: { ok: true, value: { sides: { agent: expect.any(Object), baseline: expect.any(Object) } } },
      storm: { ok: true, value: { failures: 0 } },
      // Measured, not judged: how many events a killed cluster node costs is the figure, not a test.
      clusterStorm: { ok: true },
      soak: { ok: true, value: { completed: 5 } },
      // The image figure needs a container engine; the tests have one (they fail without it).
      footprint: { ok: true, value: { bundleKiB: expect.any(Number), image: { ok: true } } },
    });
    const targets = results["targets"] as Array<{ figure: string }>;
    expect(targets.map((t) => t.figure.split(".")[0])).toStrictEqual(["1", "2", "3", "4", "5", "6"]);
  });

  it("writes the markdown report with its chart", async () => {
    const markdown = await readFile(join(out, "latest.md"), "utf8");
    expect(markdown).toContain("Quick mode");
    expect(markdown).toContain("![Cold start and memory](latest.svg)");
    expect(await readFile(join(out, "latest.svg"), "utf8")).toMatch(/^<svg /);
  });

  it("leaves the committed results alone", async () => {
    expect(await mtime(join(ROOT, "bench", "results", "latest.md"))).toBe(committedReportBefore);
  });
});
