import { describe, expect, it } from "vitest";
import type { FootprintResult } from "../../bench/footprint.js";
import { evaluateTargets, markdownReport, type BenchResults } from "../../bench/report.js";

/** The bench's report of figure 6, the image's size over its base, measured or not. */
const notRun = { ok: false, error: "not run (--only)" } as const;
const footprint = (image: FootprintResult["image"]): FootprintResult => ({
  tarballKiB: 900,
  productionDependenciesKiB: 36_000,
  productionPackages: 77,
  packageKiB: 3_900,
  bundleKiB: 2_400,
  bundleFiles: 23,
  agentKiB: 1_060,
  ...(image && { image }),
});

function report(f: FootprintResult): { markdown: string; targets: BenchResults["targets"] } {
  const results: Omit<BenchResults, "targets"> = {
    generatedAt: "2026-11-30T00:00:00.000Z",
    durationS: 1,
    machine: {
      cpuModel: "cpu",
      cores: 2,
      memoryGiB: 1,
      freeMemoryGiB: 1,
      loadAverage: [0, 0, 0],
      node: "v22",
      platform: "linux x64",
      openFileLimit: "1024",
      mosquitto: "mosquitto",
    },
    options: {
      quick: false,
      rounds: 1,
      settleMs: 1,
      pollIntervalSeconds: 1,
      stormAgents: 1,
      soakCycles: 1,
      soakPollIntervalSeconds: 1,
      sides: ["agent"],
    },
    coldStart: notRun,
    storm: notRun,
    soak: notRun,
    footprint: { ok: true, value: f },
  };
  const targets = evaluateTargets(results);
  return { markdown: markdownReport({ ...results, targets }, undefined), targets };
}

describe("the bench's image figure", () => {
  it("reports the image's size over its base beside the other footprint figures, and as a target", () => {
    const { markdown, targets } = report(
      footprint({
        ok: true,
        value: {
          engine: "20.10.24",
          base: "node:22-bookworm-slim",
          baseMiB: 250.1,
          imageMiB: 252.6,
          overBaseMiB: 2.5,
        },
      }),
    );
    expect(markdown).toContain(
      "| The image (docker/Dockerfile, engine 20.10.24) over its base node:22-bookworm-slim: 252.6 - 250.1 MiB " +
        "(`docker image inspect`) | 2.50 MiB |",
    );
    expect(targets).toStrictEqual([
      {
        figure: "6. Image size over its base image",
        target: "<= 5 MiB",
        measured: "2.50 MiB over node:22-bookworm-slim",
        met: true,
      },
    ]);
  });

  it("misses the target above 5 MiB", () => {
    const { targets } = report(
      footprint({
        ok: true,
        value: {
          engine: "28",
          base: "node:22-bookworm-slim",
          baseMiB: 250,
          imageMiB: 285.3,
          overBaseMiB: 35.3,
        },
      }),
    );
    expect(targets[0]?.met).toBe(false);
  });

  it("says in that row, not by failing, that no engine answered", () => {
    const error = "not measured: no container engine answered (`docker version`)";
    const { markdown, targets } = report(footprint({ ok: false, error }));
    expect(markdown).toContain(`| The image (docker/Dockerfile) over its base | ${error} |`);
    expect(markdown).toContain(`| 6. Image size over its base image | <= 5 MiB | ${error} | n/a |`);
    expect(targets[0]?.met).toBeUndefined();
  });

  it("reads a report written before the image was measured", () => {
    const { markdown } = report(footprint(undefined));
    expect(markdown).toContain(
      "| The image (docker/Dockerfile) over its base | not measured (this report predates",
    );
  });
});
