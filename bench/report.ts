/** Turns the bench's results into bench/results/latest.md (with the chart) and latest.json. */
import type { ClusterStormResult } from "./cluster-storm.js";
import type { ColdRun, SideName } from "./cold-start.js";
import { SIDES } from "./cold-start.js";
import type { FootprintResult } from "./footprint.js";
import type { ImageStartResult } from "./image-start.js";
import type { Panel } from "./lib/chart.js";
import type { MachineInfo } from "./lib/machine.js";
import { pairedRatios, summarise, type Summary } from "./lib/stats.js";
import type { SoakResult } from "./soak.js";
import type { StormResult } from "./storm.js";

export interface BenchOptions {
  readonly quick: boolean;
  readonly rounds: number;
  readonly settleMs: number;
  readonly pollIntervalSeconds: number;
  readonly stormAgents: number;
  /** Agents in the cluster storm (absent in reports from before it). */
  readonly clusterAgents?: number;
  readonly soakCycles: number;
  readonly soakPollIntervalSeconds: number;
  readonly sides: readonly SideName[];
}

export type Outcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export interface SideSummary {
  readonly codeMs: Summary;
  readonly rssMiB: Summary;
  readonly tokenToEventMs: Summary;
  readonly approvalToEventMs: Summary;
}

export interface PairedRatios {
  readonly codeMs: Summary;
  readonly rssMiB: Summary;
}

export interface Target {
  readonly figure: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

/** One `--only` re-measurement, and the one before it (each earlier one is named in the report too). */
export interface Rerun {
  readonly at: string;
  /** The machine's load average when the re-measurement began (absent in earlier reports). */
  readonly loadAverage?: readonly number[];
  readonly sections: readonly string[];
  readonly earlier?: Rerun;
}

export interface BenchResults {
  readonly generatedAt: string;
  readonly durationS: number;
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly coldStart: Outcome<{
    readonly runs: readonly ColdRun[];
    readonly sides: Partial<Record<SideName, SideSummary>>;
    /** agent / baseline, pair by pair (same round). */
    readonly codeRatio: Summary;
    readonly rssRatio: Summary;
    /** Every agent side / baseline, pair by pair (same round); absent in reports from before issue 19. */
    readonly ratios?: Partial<Record<SideName, PairedRatios>>;
  }>;
  /** `docker run` to the code on the display (bench/image-start.ts); absent when not run. */
  readonly imageStart?: Outcome<ImageStartResult>;
  readonly storm: Outcome<StormResult>;
  /** The storm on a three-node cluster, one node killed at the approvals (bench/cluster-storm.ts); absent when never run. */
  readonly clusterStorm?: Outcome<ClusterStormResult>;
  readonly soak: Outcome<SoakResult>;
  readonly footprint: Outcome<FootprintResult>;
  readonly targets: readonly Target[];
  /** Set when `--only` re-measured some sections into an existing report. */
  readonly rerun?: Rerun;
}

export function summariseColdStart(runs: readonly ColdRun[], sides: readonly SideName[]) {
  const bySide = (side: SideName) => runs.filter((r) => r.side === side).sort((a, b) => a.round - b.round);
  const summaries: Partial<Record<SideName, SideSummary>> = {};
  for (const side of sides) {
    const list = bySide(side);
    summaries[side] = {
      codeMs: summarise(list.map((r) => r.codeMs)),
      rssMiB: summarise(list.map((r) => r.rssMiB)),
      tokenToEventMs: summarise(list.map((r) => r.tokenToEventMs)),
      approvalToEventMs: summarise(list.map((r) => r.approvalToEventMs)),
    };
  }
  const agent = bySide("agent");
  const baseline = bySide("baseline");
  const ratios: Partial<Record<SideName, PairedRatios>> = {};
  for (const side of sides) {
    if (side === "baseline" || !sides.includes("baseline")) continue;
    const list = bySide(side);
    ratios[side] = {
      codeMs: summarise(
        pairedRatios(
          list.map((r) => r.codeMs),
          baseline.map((r) => r.codeMs),
        ),
      ),
      rssMiB: summarise(
        pairedRatios(
          list.map((r) => r.rssMiB),
          baseline.map((r) => r.rssMiB),
        ),
      ),
    };
  }
  return {
    runs,
    sides: summaries,
    ratios,
    codeRatio: summarise(
      pairedRatios(
        agent.map((r) => r.codeMs),
        baseline.map((r) => r.codeMs),
      ),
    ),
    rssRatio: summarise(
      pairedRatios(
        agent.map((r) => r.rssMiB),
        baseline.map((r) => r.rssMiB),
      ),
    ),
  };
}

/** Issue 19's targets for each start mode: code on the display and RSS while waiting, agent / baseline. */
const START_TARGETS: ReadonlyArray<{ side: SideName; label: string; code: number }> = [
  { side: "agent", label: "reboot", code: 0.5 },
  { side: "agent-first-boot", label: "first boot", code: 0.6 },
];
const RSS_TARGET = 0.8;

export function evaluateTargets(results: Omit<BenchResults, "targets">): Target[] {
  const targets: Target[] = [];
  const cold = results.coldStart;
  if (cold.ok) {
    const agent = cold.value.sides.agent;
    const baselineRss = cold.value.sides.baseline?.rssMiB;
    const spread = baselineRss
      ? `; baseline ${fmt(baselineRss.median, 1)} MiB, runs ${fmt(baselineRss.min, 1)}-${fmt(baselineRss.max, 1)}`
      : "";
    for (const start of START_TARGETS) {
      const code =
        cold.value.ratios?.[start.side]?.codeMs ??
        (start.side === "agent" ? cold.value.codeRatio : undefined);
      if (!code || code.n === 0) continue;
      targets.push({
        figure: `1. Code on the display, ${start.label}`,
        target: `agent <= ${start.code} x baseline`,
        measured: `${fmt(code.median, 2)} x (pairs p25-p75 ${fmt(code.p25, 2)}-${fmt(code.p75, 2)}, n=${code.n})`,
        met: code.median <= start.code,
      });
    }
    for (const start of START_TARGETS) {
      const rss =
        cold.value.ratios?.[start.side]?.rssMiB ?? (start.side === "agent" ? cold.value.rssRatio : undefined);
      if (!rss || rss.n === 0) continue;
      targets.push({
        figure: `2. Memory while waiting for the person, ${start.label}`,
        target: `agent <= ${RSS_TARGET} x baseline`,
        measured: `${fmt(rss.median, 2)} x (pairs p25-p75 ${fmt(rss.p25, 2)}-${fmt(rss.p75, 2)}${spread})`,
        met: rss.median <= RSS_TARGET,
      });
    }
    if (agent)
      targets.push({
        figure: "3. Token response to `authenticated` event",
        target: "p95 <= 15 ms",
        measured: `p95 ${fmt(agent.tokenToEventMs.p95, 1)} ms (n=${agent.tokenToEventMs.n})`,
        met: agent.tokenToEventMs.p95 <= 15,
      });
  }
  if (results.storm.ok) {
    const storm = results.storm.value;
    targets.push({
      figure: `4. Sign-in storm (${storm.agents} agents)`,
      target: "all within 3 polling intervals of approval, 0 failures",
      measured: `${fmt(storm.allAuthenticatedIntervals, 2)} intervals, ${storm.failures} failures`,
      met: storm.failures === 0 && storm.allAuthenticatedIntervals <= 3,
    });
  }
  if (results.soak.ok) {
    const soak = results.soak.value;
    targets.push({
      figure: `5. Soak (${soak.completed} sign-in / sign-out cycles)`,
      target: "heap and RSS growth < 5 %, no growth in open handles",
      measured: `heap ${fmt(soak.heapDriftPct, 1)} %, RSS ${fmt(soak.rssDriftPct, 1)} %, handles ${soak.handlesAtWarmup} -> ${soak.handlesAtEnd}`,
      met:
        soak.completed >= soak.cycles &&
        // Drift is growth: a heap or RSS that shrinks after warm-up is no leak.
        soak.heapDriftPct < 5 &&
        soak.rssDriftPct < 5 &&
        soak.handlesAtEnd <= soak.handlesAtWarmup,
    });
  }
  if (results.footprint.ok) {
    const image = imageOf(results.footprint.value);
    targets.push({
      figure: "6. Image size over its base image",
      target: "<= 5 MiB",
      measured: image.ok ? `${fmt(image.value.overBaseMiB, 2)} MiB over ${image.value.base}` : image.error,
      met: image.ok ? image.value.overBaseMiB <= 5 : undefined,
    });
  }
  return targets;
}

export function chartPanels(results: BenchResults): Panel[] {
  if (!results.coldStart.ok) return [];
  const cold = results.coldStart.value;
  const baseline = cold.sides.baseline;
  const bars = (pick: (s: SideSummary) => Summary) =>
    results.options.sides.flatMap((side) => {
      const summary = cold.sides[side];
      if (!summary) return [];
      const s = pick(summary);
      return [{ label: side, median: s.median, low: s.p25, high: s.p75, highlight: side === "agent" }];
    });
  return [
    {
      title: "Spawn to code on the display, median and p25-p75",
      unit: "ms, lower is better",
      bars: bars((s) => s.codeMs),
      ...(baseline
        ? { target: { value: baseline.codeMs.median * 0.5, label: "target (reboot): 0.5 x baseline" } }
        : {}),
    },
    {
      title: "RSS while waiting for the person, median and p25-p75",
      unit: "MiB, lower is better",
      bars: bars((s) => s.rssMiB),
      ...(baseline
        ? {
            target: { value: baseline.rssMiB.median * RSS_TARGET, label: `target: ${RSS_TARGET} x baseline` },
          }
        : {}),
    },
  ];
}

export function markdownReport(results: BenchResults, chartFile: string | undefined): string {
  const m = results.machine;
  const o = results.options;
  const lines: string[] = [
    "# edge-signin benchmark",
    "",
    `Generated ${results.generatedAt} by \`npm run bench${o.quick ? " -- --quick" : ""}\` in ${fmt(results.durationS, 0)} s.`,
    results.rerun ? `${rerunLines(results.rerun).join("\n")}\nThe rest is from the run above.\n` : "",
    o.quick ? "\n**Quick mode: tiny counts, to keep the script working. These figures mean nothing.**\n" : "",
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB memory (${m.freeMemoryGiB} GiB free at start), ` +
      `load average at start ${m.loadAverage.join(" / ")}; ${m.platform}; Node ${m.node}; ${m.mosquitto}; open-file limit ${m.openFileLimit}.`,
    "The machine may be shared with other work (the load average above tells), so absolute times can be noisy.",
    "Sides run alternately (one run of each per round, same order) and ratios are taken pair by pair",
    "within a round, so a busy moment weighs on both sides of a pair.",
    "",
    "## Targets",
    "",
    "| Figure | Target | Measured | Met |",
    "| --- | --- | --- | --- |",
    ...results.targets.map(
      (t) =>
        `| ${t.figure} | ${t.target} | ${t.measured} | ${t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"} |`,
    ),
    "",
  ];
  lines.push(...coldStartSection(results, chartFile), ...imageStartLines(results));
  lines.push(...stormSection(results), ...soakSection(results));
  lines.push(...footprintSection(results), ...reproduceSection());
  return `${lines.join("\n")}\n`;
}

function coldStartSection(results: BenchResults, chartFile: string | undefined): string[] {
  const o = results.options;
  const out = ["## 1-3. Cold start, memory while waiting, approval to event", ""];
  if (!results.coldStart.ok) return [...out, `Failed: ${results.coldStart.error}`, ""];
  const cold = results.coldStart.value;
  out.push(
    `${o.rounds} rounds after one warm-up round; each round runs ${o.sides.join(", ")} once, in that order. ` +
      `The local OpenID provider (oidc-provider over HTTPS, polling interval ${o.pollIntervalSeconds} s) and Mosquitto ` +
      "run in and beside the bench process; both sides trust the provider's certificate through NODE_EXTRA_CA_CERTS.",
    "",
    "- **Code on the display**: from `spawn()` to the retained `{base}/display` message at the bench's MQTT subscriber " +
      "(agent), or to the message on stdout (baseline, which has no display).",
    `- **RSS while waiting**: VmRSS from /proc/<pid>/status ${o.settleMs} ms after the code was shown, while polling.`,
    "- **Token response to event**: from the provider writing the last byte of the successful token response to the " +
      "`authenticated` event at the subscriber (baseline: to its result on stdout). The approval is made through the " +
      "provider's approval hook at a random moment of the polling cycle.",
    "- **Approval to event**: from the approval stored at the provider (the person finished) to the same event: " +
      "bounded by the polling interval.",
    "",
    ...Object.entries(SIDES)
      .filter(([name]) => o.sides.includes(name as SideName))
      .map(([name, side]) => `- \`${name}\`: ${side.description}.`),
    "",
  );
  if (chartFile) out.push(`![Cold start and memory](${chartFile})`, "");
  out.push(
    "| Side | Code on display, ms: median (p25-p75) | RSS waiting, MiB: median (p25-p75) | Token response to event, ms: p50 / p95 / p99 | Approval to event, ms: p50 / p95 / max |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const side of o.sides) {
    const s = cold.sides[side];
    if (!s) continue;
    out.push(
      `| ${side} | ${fmt(s.codeMs.median, 0)} (${fmt(s.codeMs.p25, 0)}-${fmt(s.codeMs.p75, 0)}) | ` +
        `${fmt(s.rssMiB.median, 1)} (${fmt(s.rssMiB.p25, 1)}-${fmt(s.rssMiB.p75, 1)}) | ` +
        `${fmt(s.tokenToEventMs.median, 1)} / ${fmt(s.tokenToEventMs.p95, 1)} / ${fmt(s.tokenToEventMs.p99, 1)} | ` +
        `${fmt(s.approvalToEventMs.median, 0)} / ${fmt(s.approvalToEventMs.p95, 0)} / ${fmt(s.approvalToEventMs.max, 0)} |`,
    );
  }
  out.push("");
  const ratios = cold.ratios ?? { agent: { codeMs: cold.codeRatio, rssMiB: cold.rssRatio } };
  for (const [side, ratio] of Object.entries(ratios)) {
    if (!ratio) continue;
    out.push(
      `Paired ratios ${side} / baseline (n=${ratio.codeMs.n}): code on display ${fmt(ratio.codeMs.median, 2)} ` +
        `(p25-p75 ${fmt(ratio.codeMs.p25, 2)}-${fmt(ratio.codeMs.p75, 2)}, min-max ${fmt(ratio.codeMs.min, 2)}-${fmt(ratio.codeMs.max, 2)}); ` +
        `RSS ${fmt(ratio.rssMiB.median, 2)} (p25-p75 ${fmt(ratio.rssMiB.p25, 2)}-${fmt(ratio.rssMiB.p75, 2)}, ` +
        `min-max ${fmt(ratio.rssMiB.min, 2)}-${fmt(ratio.rssMiB.max, 2)}).`,
      "",
    );
  }
  return out;
}

function stormSection(results: BenchResults): string[] {
  const out = ["## 4. Sign-in storm", ""];
  if (!results.storm.ok) return [...out, `Failed: ${results.storm.error}`, "", ...clusterStormLines(results)];
  const s = results.storm.value;
  out.push(
    `${s.agents} \`Agent\` instances in ${s.processes === 1 ? "one child process" : `${s.processes} child processes (one per core)`}, each with its own MSAL client, undici dispatcher, MQTT ` +
      "connection and state directory, started at the same instant (a power cut ends). When every code was on its " +
      "display, all were approved at once through the provider's approval hook (not the HTML journey; see " +
      "`approve()` in src/dev/identity-provider.ts). One provider process serves every poll.",
    "",
    "| Measure | Value |",
    "| --- | --- |",
    `| Start to the last code on its display | ${fmt(s.allCodesShownMs, 0)} ms |`,
    `| Approving all ${s.agents} codes at the provider (hook cost, not in the figure) | ${fmt(s.approvingMs, 0)} ms |`,
    `| Last approval to the last \`authenticated\` event | ${fmt(s.allAuthenticatedMs, 0)} ms = ${fmt(s.allAuthenticatedIntervals, 2)} polling intervals |`,
    `| \`authenticated\` events arrived after the last approval: 10 % / 50 % / 90 % of them | ${fmt(s.arrivalP10Ms, 0)} / ${fmt(s.arrivalP50Ms, 0)} / ${fmt(s.arrivalP90Ms, 0)} ms |`,
    `| Last approval to the provider's last successful token response | ${fmt(s.lastTokenSentMs, 0)} ms |`,
    `| The provider's last token response to the last \`authenticated\` event | ${fmt(s.lastTokenToLastEventMs, 0)} ms |`,
    `| TLS connections opened to the provider after the approval (each a handshake on both ends) | ${s.connectionsAfterApproval} |`,
    `| Authenticated / failures | ${s.authenticated} / ${s.failures} |`,
    `| Worker RSS (all workers) before the agents / with all signed in / peak | ${fmt(s.workerRssBeforeMiB, 1)} / ${fmt(s.workerRssAfterMiB, 1)} / ${fmt(s.workerPeakRssMiB, 1)} MiB |`,
    `| Memory per agent ((RSS signed in - RSS before) / N) | ${fmt(s.perAgentMiB, 2)} MiB |`,
    "",
  );
  if (s.failureSamples.length > 0)
    out.push("First failures:", "", ...s.failureSamples.map((f) => `- ${f}`), "");
  return [...out, ...clusterStormLines(results)];
}

/** The storm on a three-node cluster with one node killed at the approvals, beside the single-broker storm. */
export function clusterStormLines(results: BenchResults): string[] {
  const out = ["### On a three-node cluster, one node killed at the approvals", ""];
  const cluster = results.clusterStorm;
  if (!cluster?.ok) return [...out, ...whyNotMeasured(cluster)];
  const c = cluster.value;
  const single = results.storm.ok ? results.storm.value : undefined;
  const cell = (value: (s: StormResult) => string) => (single ? value(single) : "n/a");
  out.push(
    `${c.agents} agents (the shipped library build) in ${c.processes} child processes on a ${c.nodes}-node NATS ` +
      "cluster (JetStream, MQTT, `stream_replicas: 3`; test/helpers/nats-cluster.ts), each with the URL list of all " +
      "nodes, its home node first, spread evenly. A consumer on a node that is not killed hears every display and " +
      "event. When every code was on its display, all were approved through the provider's hook and, at that " +
      "moment, the node leading the QoS 1 message stream was killed (SIGKILL). Lost: devices whose event never " +
      `reached the consumer (bound: ${c.lostBound}). Duplicates: copies of an event id beyond the first.`,
    "",
    "| Measure | Single broker (above) | Cluster, one node killed |",
    "| --- | --- | --- |",
    `| Agents | ${cell((s) => String(s.agents))} | ${c.agents} |`,
    `| Start to the last code on its display | ${cell((s) => `${fmt(s.allCodesShownMs, 0)} ms`)} | ${fmt(c.allCodesShownMs, 0)} ms |`,
    `| Last approval to the last \`authenticated\` event | ${cell((s) => `${fmt(s.allAuthenticatedIntervals, 2)} polling intervals`)} | ${fmt(c.allAuthenticatedIntervals, 2)} polling intervals (${fmt(c.allAuthenticatedMs, 0)} ms) |`,
    `| Half / 90 % of the events arrived after the last approval | ${cell((s) => `${fmt(s.arrivalP50Ms, 0)} / ${fmt(s.arrivalP90Ms, 0)} ms`)} | ${fmt(c.arrivalP50Ms, 0)} / ${fmt(c.arrivalP90Ms, 0)} ms |`,
    `| Events lost (target 0) | ${cell((s) => String(s.agents - s.authenticated))} | ${c.lost} |`,
    `| Duplicate events | n/a (not counted) | ${c.duplicates} |`,
    `| Agents not signed in at the end | ${cell((s) => String(s.agents - s.authenticated))} | ${c.agents - c.signedIn} (by each agent's own status) |`,
    `| \`sign_in_failed\` events on the way (each agent retries), plus codes never shown | ${cell((s) => String(s.failures))} | ${c.failures} |`,
    "",
  );
  if (c.failureSamples.length > 0)
    out.push("First `sign_in_failed` events:", "", ...c.failureSamples.map((f) => `- ${f}`), "");
  return out;
}

function soakSection(results: BenchResults): string[] {
  const out = ["## 5. Soak", ""];
  if (!results.soak.ok) return [...out, `Failed: ${results.soak.error}`, ""];
  const s = results.soak.value;
  out.push(
    `One agent in a child process signed in (device code, approved through the hook) and out (\`agent.signOut()\`) ` +
      `${s.completed} times in ${fmt(s.durationS, 0)} s, against a provider with a ${results.options.soakPollIntervalSeconds} s ` +
      `polling interval. Heap and RSS are sampled after two full GCs; drift runs from cycle ${s.warmupCycles} (end of ` +
      "warm-up) to the last sample. Open handles are `process.getActiveResourcesInfo()`.",
    "",
    "| Measure | At warm-up | At the end | Drift |",
    "| --- | --- | --- | --- |",
  );
  const warm = s.samples.find((x) => x.cycle >= s.warmupCycles);
  const last = s.samples[s.samples.length - 1];
  if (warm && last)
    out.push(
      `| Heap used | ${fmt(warm.heapMiB, 2)} MiB | ${fmt(last.heapMiB, 2)} MiB | ${fmt(s.heapDriftPct, 1)} % |`,
      `| RSS | ${fmt(warm.rssMiB, 1)} MiB | ${fmt(last.rssMiB, 1)} MiB | ${fmt(s.rssDriftPct, 1)} % |`,
      `| Open handles | ${warm.handles} (${describeHandles(warm.handleTypes)}) | ${last.handles} (${describeHandles(last.handleTypes)}) | ${last.handles - warm.handles} |`,
    );
  if (s.error) out.push("", `Stopped early: ${s.error}`);
  out.push("");
  return out;
}

function footprintSection(results: BenchResults): string[] {
  const out = ["## 6. Production footprint", ""];
  if (!results.footprint.ok) return [...out, `Failed: ${results.footprint.error}`, ""];
  const f = results.footprint.value;
  const image = imageOf(f);
  out.push(
    "`npm pack`, then `npm ci --omit=dev --ignore-scripts` of the tarball with the project's lock file in a temp " +
      "directory; sizes are `du -sk` (on disk).",
    "",
    "| What | Size |",
    "| --- | --- |",
    `| Tarball | ${fmt(f.tarballKiB / 1024, 2)} MiB |`,
    `| Production dependencies (node_modules, ${f.productionPackages} packages) | ${fmt(f.productionDependenciesKiB / 1024, 1)} MiB |`,
    `| The package itself (dist/, README) | ${fmt(f.packageKiB / 1024, 1)} MiB |`,
    `| The bundle (dist/bundle, ${f.bundleFiles} .mjs/.cjs files, without source maps): every command besides the demo, with no node_modules | ${fmt(f.bundleKiB / 1024, 2)} MiB |`,
    `| Of which \`agent\` loads (edge-signin.mjs + agent.cjs) | ${fmt(f.agentKiB / 1024, 2)} MiB |`,
    image.ok
      ? `| The image (docker/Dockerfile, engine ${image.value.engine}) over its base ${image.value.base}: ` +
          `${fmt(image.value.imageMiB, 1)} - ${fmt(image.value.baseMiB, 1)} MiB (\`docker image inspect\`) | ` +
          `${fmt(image.value.overBaseMiB, 2)} MiB |`
      : `| The image (docker/Dockerfile) over its base | ${image.error} |`,
    "",
  );
  return out;
}

/** The image's start beside the process figures of the same run (or why it was not measured). */
function imageStartLines(results: BenchResults): string[] {
  const out = ["### In the image: `docker run` to the code on the display", ""];
  const image = results.imageStart;
  if (!image?.ok) return [...out, ...whyNotMeasured(image)];
  const v = image.value;
  const cold = results.coldStart.ok ? results.coldStart.value.sides : {};
  const processCell = (side: SideName) => {
    const s = cold[side]?.codeMs;
    return s ? `${fmt(s.median, 0)} (${fmt(s.p25, 0)}-${fmt(s.p75, 0)})` : "n/a";
  };
  const cell = (s: Summary) =>
    `${fmt(s.median, 0)} (${fmt(s.p25, 0)}-${fmt(s.p75, 0)}, min-max ${fmt(s.min, 0)}-${fmt(s.max, 0)})`;
  out.push(
    `docker/Dockerfile built unchanged (base ${v.base}, engine ${v.engine}), run locked down as image.test.ts runs ` +
      "it, with host networking to this run's broker and provider. From spawning the `docker` CLI to the code at " +
      "the subscriber: the engine's own work (container, mounts, the CLI's round trips) is in it, the process " +
      `figures have none. ${v.firstStartMs.n} rounds after one warm-up; each round a first start (new STATE_DIR ` +
      "volume) and then a restart of the same container (`docker stop`, `docker start`).",
    "",
    "| Start | In the image, ms: median (p25-p75, min-max) | The process alone (table above), ms: median (p25-p75) |",
    "| --- | --- | --- |",
    `| First start | ${cell(v.firstStartMs)} | ${processCell("agent-first-boot")} (agent-first-boot) |`,
    `| Restart | ${cell(v.restartMs)} | ${processCell("agent")} (agent, a reboot) |`,
    "",
    ...arm64Lines(v),
  );
  return out;
}

/** The linux/arm64 image beside the machine's own of the same run: emulated, so only the ratio means anything. */
function arm64Lines(own: ImageStartResult): string[] {
  const out = ["#### The linux/arm64 image, beside this machine's", ""];
  if (!own.arm64) return [...out, "Not measured in this report (it predates the figure).", ""];
  if (!own.arm64.ok) return [...out, `Not measured: ${own.arm64.error}`, ""];
  const arm = own.arm64.value;
  const how = arm.emulated
    ? `**emulated**: this machine is ${arm.hostArch === "x64" ? "amd64" : arm.hostArch}, so every arm64 instruction ran through ${arm.emulator}. ` +
      "Only the ratio to this machine's own image in the same run means anything; it says nothing about how fast " +
      "an arm64 board is"
    : "run natively on this arm64 machine";
  const median = (s: Summary) => `${fmt(s.median, 0)} (${fmt(s.p25, 0)}-${fmt(s.p75, 0)})`;
  const ratio = (a: Summary, b: Summary) => `${fmt(a.median / b.median, 1)}x`;
  const ownSize = own.overBaseMiB === undefined ? "n/a" : `${fmt(own.overBaseMiB, 2)} MiB`;
  out.push(
    `docker/Dockerfile built unchanged for ${arm.platform} (base ${arm.base}, named by \`NODE_IMAGE\`), its build ` +
      `stage and code cache on arm64's Node, and started as above, ${how}. ${arm.firstStartMs.n} rounds after ` +
      "one warm-up.",
    "",
    "| Image | Over its base | First start, ms: median (p25-p75) | Restart, ms: median (p25-p75) |",
    "| --- | --- | --- | --- |",
    `| This machine's (${own.base}) | ${ownSize} | ${median(own.firstStartMs)} | ${median(own.restartMs)} |`,
    `| linux/arm64${arm.emulated ? ", emulated" : ""} (${arm.base}: ${fmt(arm.imageMiB, 1)} - ${fmt(arm.baseMiB, 1)} MiB) | ` +
      `${fmt(arm.overBaseMiB, 2)} MiB | ${median(arm.firstStartMs)}, ${ratio(arm.firstStartMs, own.firstStartMs)} | ` +
      `${median(arm.restartMs)}, ${ratio(arm.restartMs, own.restartMs)} |`,
    "",
  );
  return out;
}

/** Why a figure added after the first reports has no value: absent (an older report), not run, or failed. */
function whyNotMeasured(outcome: { readonly ok: false; readonly error: string } | undefined): string[] {
  if (!outcome) return ["Not measured in this report (it predates the figure).", ""];
  return [outcome.error.startsWith("not ") ? `${outcome.error}.` : `Failed: ${outcome.error}`, ""];
}

/** Newest first: each `--only` run since the full one. */
function rerunLines(rerun: Rerun): string[] {
  const load = rerun.loadAverage ? ` (load average at its start ${rerun.loadAverage.join(" / ")})` : "";
  const line = `Re-measured at ${rerun.at} with \`--only ${rerun.sections.join(",")}\`: ${rerun.sections.join(", ")}${load}.`;
  return [line, ...(rerun.earlier ? rerunLines(rerun.earlier) : [])];
}

/** The image's figure, or why there is none (a report from before the image was measured has none). */
function imageOf(f: FootprintResult): NonNullable<FootprintResult["image"]> {
  return f.image ?? { ok: false, error: "not measured (this report predates the image figure)" };
}

function reproduceSection(): string[] {
  return [
    "## Reproduce",
    "",
    "```sh",
    "apt-get install mosquitto   # where no container runtime is available",
    "# The image figure builds docker/Dockerfile: it needs a container engine (without one, its row says so).",
    "npm ci && npm run bench     # about 15 minutes; writes bench/results/latest.{md,json,svg}",
    "npm run bench -- --quick    # tiny counts, a minute or two; writes to a temp directory",
    "```",
    "",
    "Options: `--rounds N`, `--storm N`, `--cluster N`, `--soak N`, `--out DIR`, `--only cold,image,storm,cluster,soak,footprint`.",
  ];
}

function describeHandles(types: Record<string, number>): string {
  return Object.entries(types)
    .map(([type, count]) => `${type} ${count}`)
    .join(", ");
}

function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}
