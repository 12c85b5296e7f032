/**
 * `npm run bench`: starts what it needs (a Mosquitto on a free port, the local OpenID provider), builds the
 * agent as production runs it, measures every figure of issue 7 and writes bench/results/latest.{md,json,svg}.
 * `--quick` runs tiny counts into a temp directory, for the smoke test: it never overwrites the results.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { bundle } from "../scripts/bundle.js";
import { runClusterStorm } from "./cluster-storm.js";
import { runColdStart, type SideName } from "./cold-start.js";
import { runImageStart } from "./image-start.js";
import { measureFootprint } from "./footprint.js";
import { startBed } from "./lib/bed.js";
import { barChartSvg } from "./lib/chart.js";
import { machineInfo } from "./lib/machine.js";
import {
  chartPanels,
  evaluateTargets,
  markdownReport,
  summariseColdStart,
  type BenchOptions,
  type BenchResults,
  type Outcome,
} from "./report.js";
import { runSoak } from "./soak.js";
import { runStorm } from "./storm.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECTIONS = ["cold", "image", "storm", "cluster", "soak", "footprint"] as const;
type Section = (typeof SECTIONS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    storm: { type: "string" },
    cluster: { type: "string" },
    soak: { type: "string" },
    out: { type: "string" },
    only: { type: "string" },
    before: { type: "string" },
  },
});

const quick = values.quick ?? false;
const options = {
  quick,
  rounds: count(values.rounds, quick ? 2 : 30, "--rounds"),
  settleMs: quick ? 300 : 1_500,
  pollIntervalSeconds: 1,
  stormAgents: count(values.storm, quick ? 5 : 500, "--storm"),
  clusterAgents: count(values.cluster, quick ? 6 : 1_000, "--cluster"),
  soakCycles: count(values.soak, quick ? 5 : 1_000, "--soak"),
  soakPollIntervalSeconds: 0.05,
  sides: quick
    ? ["agent", "baseline"]
    : [
        "agent",
        ...(values.before ? (["agent-before"] as const) : []),
        "baseline",
        "agent-first-boot",
        "agent-unbundled",
      ],
} satisfies BenchOptions;
const only = new Set<Section>(
  values.only ? values.only.split(",").map((s) => section(s.trim())) : [...SECTIONS],
);
const outDir =
  values.out ??
  (quick ? await mkdtemp(join(tmpdir(), "edge-signin-bench-quick-")) : join(ROOT, "bench", "results"));

function count(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${flag}: expected a positive whole number, got "${text}"`);
  return n;
}

/** The options that shape the sections re-measured this time. */
function optionsOf(sections: ReadonlySet<Section>): Partial<BenchOptions> {
  const { rounds, settleMs, sides, stormAgents, clusterAgents, soakCycles, soakPollIntervalSeconds } =
    options;
  return {
    ...(sections.has("cold") ? { rounds, settleMs, sides } : {}),
    ...(sections.has("storm") ? { stormAgents } : {}),
    ...(sections.has("cluster") ? { clusterAgents } : {}),
    ...(sections.has("soak") ? { soakCycles, soakPollIntervalSeconds } : {}),
  };
}

function section(name: string): Section {
  if (!(SECTIONS as readonly string[]).includes(name))
    throw new Error(`--only: expected some of ${SECTIONS.join(", ")}, got "${name}"`);
  return name as Section;
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function attempt<T>(name: string, enabled: boolean, work: () => Promise<T>): Promise<Outcome<T>> {
  if (!enabled) return { ok: false, error: quick ? "not run (--quick)" : "not run (--only)" };
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    log(`${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return {
      ok: false,
      error: error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error),
    };
  }
}

/** Quick mode bundles into its own directory: tests running beside it may be rebuilding dist/. */
const bundleDir = quick ? join(outDir, "bundle") : join(ROOT, "dist", "bundle");

async function buildAgent(sides: readonly SideName[]): Promise<void> {
  log(`bundling ${bundleDir} (the production start path)`);
  await bundle(bundleDir);
  if (sides.includes("agent-unbundled")) {
    log("compiling dist/src with tsc (the unbundled comparison)");
    await promisify(execFile)(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], {
      cwd: ROOT,
    }).catch((error: { stdout?: string }) => {
      // tsc still emits on type errors; only a missing entry point stops the comparison.
      log(`tsc reported errors (emitted anyway):\n${error.stdout ?? ""}`);
    });
  }
}

/** Checks `ref` out beside the repository (node_modules shared) and bundles it there; returns its entry point. */
async function buildBefore(ref: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-before-"));
  const run = promisify(execFile);
  log(`bundling ${ref} in ${dir} (the before side)`);
  await run("git", ["worktree", "add", "--detach", dir, ref], { cwd: ROOT });
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  await run(join(ROOT, "node_modules", ".bin", "tsx"), ["scripts/bundle.ts"], {
    cwd: dir,
    maxBuffer: 1 << 24,
  });
  return join(dir, "dist", "bundle", "edge-signin.mjs");
}

async function readPrevious(path: string): Promise<BenchResults | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as BenchResults;
  } catch {
    return undefined;
  }
}

const began = performance.now();
const machine = machineInfo();
log(`writing to ${outDir}`);
await buildAgent(only.has("cold") ? options.sides : []);
// `--before REF`: the same start path built from an earlier commit, run alternately with `agent` in each round.
const beforeEntry = values.before && only.has("cold") ? await buildBefore(values.before) : undefined;

const bed = await startBed(options.pollIntervalSeconds);
let results: Omit<BenchResults, "targets">;
try {
  const coldStart = await attempt("cold start", only.has("cold"), async () =>
    summariseColdStart(
      await runColdStart(
        bed,
        {
          rounds: options.rounds,
          sides: options.sides,
          settleMs: options.settleMs,
          bundleEntry: join(bundleDir, "edge-signin.mjs"),
          ...(beforeEntry ? { beforeEntry } : {}),
        },
        log,
      ),
      options.sides,
    ),
  );
  // Quick mode builds no second image (footprint builds one): the smoke test keeps this part's code compiled only.
  const imageStart = await attempt("image start", only.has("image") && !quick, () =>
    runImageStart(bed, Math.min(options.rounds, 9), log),
  );
  const storm = await attempt("storm", only.has("storm"), () => runStorm(bed, options.stormAgents, log));
  const clusterStorm = await attempt("cluster storm", only.has("cluster"), () =>
    runClusterStorm(bed.idp, bed.scratch, bed.pollIntervalMs, options.clusterAgents, log),
  );
  const soak = await attempt("soak", only.has("soak"), async () => {
    const soakBed = await startBed(options.soakPollIntervalSeconds);
    try {
      return await runSoak(soakBed, options.soakCycles, log);
    } finally {
      await soakBed.close();
    }
  });
  const footprint = await attempt("footprint", only.has("footprint"), () =>
    measureFootprint(bed.scratch, bundleDir),
  );
  results = {
    generatedAt: new Date().toISOString(),
    durationS: (performance.now() - began) / 1000,
    machine,
    options,
    coldStart,
    imageStart,
    storm,
    clusterStorm,
    soak,
    footprint,
  };
} finally {
  await bed.close();
  if (beforeEntry)
    await promisify(execFile)("git", ["worktree", "remove", "--force", join(beforeEntry, "..", "..", "..")], {
      cwd: ROOT,
    }).catch(() => undefined);
}

// `--only` into a directory that holds a report: keep the figures of the sections not run this time.
const previous = values.only ? await readPrevious(join(outDir, "latest.json")) : undefined;
if (previous) {
  results = {
    ...results,
    // The header (machine, time) stays the one of the run that measured most; the re-measured sections are named.
    generatedAt: previous.generatedAt,
    // Each section's report text names its own counts: keep the earlier run's for the sections kept.
    options: { ...previous.options, ...optionsOf(only) },
    durationS: previous.durationS,
    machine: previous.machine,
    rerun: {
      at: results.generatedAt,
      // The header's machine figures are the earlier run's; how busy the machine was now is this run's own.
      loadAverage: machine.loadAverage,
      sections: [...only],
      ...(previous.rerun ? { earlier: previous.rerun } : {}),
    },
    coldStart: only.has("cold") ? results.coldStart : previous.coldStart,
    imageStart: only.has("image") ? results.imageStart : previous.imageStart,
    storm: only.has("storm") ? results.storm : previous.storm,
    ...(only.has("cluster")
      ? { clusterStorm: results.clusterStorm }
      : previous.clusterStorm
        ? { clusterStorm: previous.clusterStorm }
        : {}),
    soak: only.has("soak") ? results.soak : previous.soak,
    footprint: only.has("footprint") ? results.footprint : previous.footprint,
  };
}
const full: BenchResults = { ...results, targets: evaluateTargets(results) };
await mkdir(outDir, { recursive: true });
const panels = chartPanels(full);
const chartFile = panels.length > 0 ? "latest.svg" : undefined;
if (chartFile) await writeFile(join(outDir, chartFile), barChartSvg(panels));
await writeFile(join(outDir, "latest.json"), `${JSON.stringify(full, null, 2)}\n`);
await writeFile(join(outDir, "latest.md"), markdownReport(full, chartFile));
log(`report: ${join(outDir, "latest.md")}`);
for (const target of full.targets)
  log(
    `${target.met === undefined ? "n/a " : target.met ? "met " : "MISS"} ${target.figure}: ${target.measured}`,
  );
const failed = [
  full.coldStart,
  full.imageStart,
  full.storm,
  full.clusterStorm,
  full.soak,
  full.footprint,
].filter(
  (o) => o !== undefined && !o.ok && !o.error.startsWith("not run (") && !o.error.startsWith("not measured:"),
);
// A figure that could not be measured is a broken bench (the smoke test relies on this); a missed target is not.
process.exitCode = failed.length > 0 ? 1 : 0;
