import { describe, expect, it } from "vitest";
import type { ColdRun, SideName } from "../../bench/cold-start.js";
import type { FootprintResult } from "../../bench/footprint.js";
import {
  evaluateTargets,
  markdownReport,
  summariseColdStart,
  type BenchResults,
} from "../../bench/report.js";

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

function base(): Omit<BenchResults, "targets"> {
  return {
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
    footprint: notRun,
  };
}

function report(f: FootprintResult): { markdown: string; targets: BenchResults["targets"] } {
  const results: Omit<BenchResults, "targets"> = { ...base(), footprint: { ok: true, value: f } };
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

describe("the bench's start targets (issue 19)", () => {
  const run = (side: SideName, round: number, codeMs: number, rssMiB: number): ColdRun => ({
    side,
    round,
    codeMs,
    rssMiB,
    tokenToEventMs: 1,
    approvalToEventMs: 1,
  });
  const sides: SideName[] = ["agent", "baseline", "agent-first-boot"];
  const runs = [1, 2, 3].flatMap((round) => [
    run("agent", round, 90 + round, 50),
    run("baseline", round, 200, 60 + round * 5),
    run("agent-first-boot", round, 130, 56),
  ]);

  function withCold(imageStart?: BenchResults["imageStart"]) {
    const results: Omit<BenchResults, "targets"> = {
      ...base(),
      options: { ...base().options, sides },
      coldStart: { ok: true, value: summariseColdStart(runs, sides) },
      ...(imageStart && { imageStart }),
    };
    const targets = evaluateTargets(results);
    return { targets, markdown: markdownReport({ ...results, targets }, undefined) };
  }

  it("holds each start mode to its own ratio, pair by pair, with the baseline's spread beside the memory", () => {
    expect(withCold().targets).toStrictEqual([
      {
        figure: "1. Code on the display, reboot",
        target: "agent <= 0.5 x baseline",
        measured: "0.46 x (pairs p25-p75 0.46-0.46, n=3)",
        met: true,
      },
      {
        figure: "1. Code on the display, first boot",
        target: "agent <= 0.6 x baseline",
        measured: "0.65 x (pairs p25-p75 0.65-0.65, n=3)",
        met: false,
      },
      {
        figure: "2. Memory while waiting for the person, reboot",
        target: "agent <= 0.8 x baseline",
        measured: "0.71 x (pairs p25-p75 0.69-0.74; baseline 70.0 MiB, runs 65.0-75.0)",
        met: true,
      },
      {
        figure: "2. Memory while waiting for the person, first boot",
        target: "agent <= 0.8 x baseline",
        measured: "0.80 x (pairs p25-p75 0.77-0.83; baseline 70.0 MiB, runs 65.0-75.0)",
        met: true,
      },
      {
        figure: "3. Token response to `authenticated` event",
        target: "p95 <= 15 ms",
        measured: "p95 1.0 ms (n=3)",
        met: true,
      },
    ]);
  });

  it("says the image's start was not measured when no engine answers, and shows it beside the process when it was", () => {
    expect(
      withCold({ ok: false, error: "not measured: no engine (`docker version` did not answer)" }).markdown,
    ).toContain("not measured: no engine (`docker version` did not answer).");
    const s = { n: 3, median: 900, p25: 850, p75: 950, p95: 990, p99: 999, min: 800, max: 1000 };
    const { markdown } = withCold({
      ok: true,
      value: { engine: "20.10", base: "node:22-bookworm-slim", runs: [], firstStartMs: s, restartMs: s },
    });
    expect(markdown).toContain(
      "| First start | 900 (850-950, min-max 800-1000) | 130 (130-130) (agent-first-boot) |",
    );
    expect(markdown).toContain(
      "| Restart | 900 (850-950, min-max 800-1000) | 92 (92-93) (agent, a reboot) |",
    );
  });

  it("puts the cluster storm beside the single-broker storm, lost events and duplicates included", () => {
    const results: Omit<BenchResults, "targets"> = {
      ...base(),
      clusterStorm: {
        ok: true,
        value: {
          agents: 1000,
          processes: 2,
          nodes: 3,
          codesShown: 1000,
          allCodesShownMs: 9000,
          approvingMs: 300,
          allAuthenticatedMs: 14_500,
          allAuthenticatedIntervals: 14.5,
          arrivalP50Ms: 12_000,
          arrivalP90Ms: 13_000,
          authenticated: 999,
          lost: 1,
          duplicates: 4,
          failures: 0,
          failureSamples: [],
          consumerReconnects: 0,
          signedIn: 1000,
          lostBound: "30 polling intervals without a new event",
        },
      },
    };
    const markdown = markdownReport({ ...results, targets: evaluateTargets(results) }, undefined);
    expect(markdown).toContain("| Measure | Single broker (above) | Cluster, one node killed |");
    expect(markdown).toContain(
      "| Last approval to the last `authenticated` event | n/a | 14.50 polling intervals (14500 ms) |",
    );
    expect(markdown).toContain("| Events lost (target 0) | n/a | 1 |");
    expect(markdown).toContain("| Duplicate events | n/a (not counted) | 4 |");
    expect(markdown).toContain("bound: 30 polling intervals without a new event");
    // A report from before the figure, and a run that did not measure it, say so.
    expect(markdownReport({ ...base(), targets: [] }, undefined)).toContain(
      "### On a three-node cluster, one node killed at the approvals\n\nNot measured in this report",
    );
    expect(
      markdownReport(
        { ...base(), clusterStorm: { ok: false, error: "not run (--only)" }, targets: [] },
        undefined,
      ),
    ).toContain("not run (--only).");
  });
});
