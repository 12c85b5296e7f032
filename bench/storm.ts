/**
 * Figure 4: the sign-in storm. N agents (spread over a few child processes, one per core by default; each
 * agent with its own MSAL client, MQTT connection and state directory) start together, as after a power cut;
 * when every code is on its display they are all approved at once, through the identity provider's approval
 * hook (the person's HTML journey is not what is measured here). Timed: the last `authenticated` event after
 * the approvals.
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Bed, Seen } from "./lib/bed.js";
import { TOPIC_PREFIX } from "./lib/bed.js";
import { peakRssMiB, rssMiB, within } from "./lib/proc.js";
import { startWorker } from "./lib/worker.js";

const SHOW_TIMEOUT_MS = 300_000;

export interface StormResult {
  /** Agents whose code reached its display within the time allowed. */
  readonly codesShown: number;
  readonly agents: number;
  /** Child processes the agents ran in. */
  readonly processes: number;
  /** Start to the last code on its display, ms. */
  readonly allCodesShownMs: number;
  /** Time to approve every code at the provider, ms (not part of the figure; shows the hook's own cost). */
  readonly approvingMs: number;
  /** Last approval stored to the last `authenticated` event at the subscriber, ms. */
  readonly allAuthenticatedMs: number;
  /** Same, in polling intervals. */
  readonly allAuthenticatedIntervals: number;
  /** The last approval to the provider's last successful token response, ms: the provider's share. */
  readonly lastTokenSentMs: number;
  /** The provider's last token response to the last `authenticated` event at the subscriber, ms. */
  readonly lastTokenToLastEventMs: number;
  /** TLS connections the agents opened to the provider from the approvals to the last event (handshakes on both ends). */
  readonly connectionsAfterApproval: number;
  /** When the first 10 %, half and 90 % of the `authenticated` events had arrived after the last approval, ms. */
  readonly arrivalP10Ms: number;
  readonly arrivalP50Ms: number;
  readonly arrivalP90Ms: number;
  readonly authenticated: number;
  readonly failures: number;
  readonly failureSamples: readonly string[];
  /** RSS of the worker processes, summed. */
  readonly workerRssBeforeMiB: number;
  readonly workerRssAfterMiB: number;
  readonly workerPeakRssMiB: number;
  /** (RSS with every agent signed in - RSS before any agent existed) / N, MiB. */
  readonly perAgentMiB: number;
  readonly openFileLimit: string;
}

/**
 * One process per core by default (a device is one agent on its own hardware, and the issue allows "one process
 * or a few"); BENCH_STORM_PROCESSES=1 puts all agents in one.
 */
export const DEFAULT_STORM_PROCESSES = Number(
  process.env["BENCH_STORM_PROCESSES"] ?? Math.max(1, availableParallelism()),
);

export async function runStorm(
  bed: Bed,
  count: number,
  progress: (line: string) => void,
  processes = DEFAULT_STORM_PROCESSES,
): Promise<StormResult> {
  const idPrefix = `storm-${Date.now().toString(36)}`;
  const share = (index: number) => Math.floor(count / processes) + (index < count % processes ? 1 : 0);
  const workers = Array.from({ length: processes }, (_, index) =>
    startWorker(
      "storm-worker.ts",
      {
        BENCH_STORM_INPUT: JSON.stringify({
          count: share(index),
          idPrefix: `${idPrefix}-${index}`,
          stateRoot: join(bed.scratch, "storm"),
          env: {
            EDGE_SIGNIN_AUTHORITY: bed.idp.authority,
            EDGE_SIGNIN_CLIENT_ID: bed.idp.clientId,
            EDGE_SIGNIN_TOPIC_PREFIX: TOPIC_PREFIX,
            EDGE_SIGNIN_MQTT_URL: bed.broker.url,
            EDGE_SIGNIN_IDP_CA_FILE: bed.idp.caFile,
            EDGE_SIGNIN_LOG_LEVEL: "warn",
          },
        }),
      },
      (process.env["BENCH_STORM_NODE_ARGS"] ?? "").split(" ").filter(Boolean),
    ),
  );
  const ids = workers.flatMap((_, index) =>
    Array.from({ length: share(index) }, (__, i) => `${idPrefix}-${index}-${i}`),
  );
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  try {
    const ready = await within(
      Promise.all(workers.map((worker) => worker.next<{ type: string; rssMiB: number }>("ready"))),
      120_000,
      "storm workers",
    );
    const pids = workers.map((worker) => worker.child.pid as number);
    progress(`storm: ${count} agents built in ${processes} processes`);
    const shown: Seen[] = [];
    const displays = ids.map((id) => bed.watcher.next("display", id).then((seen) => void shown.push(seen)));
    const startedAt = performance.now();
    for (const worker of workers) worker.send("start");
    const ticker = setInterval(() => progress(`storm: ${shown.length}/${count} codes shown`), 10_000);
    // Agents whose code never shows count as failures; the others are still approved and timed.
    await within(Promise.all(displays), SHOW_TIMEOUT_MS, `${count} codes on their displays`)
      .catch(() => undefined)
      .finally(() => clearInterval(ticker));
    const allCodesShownMs = Math.max(...shown.map((s) => s.at)) - startedAt;
    progress(`storm: ${shown.length} codes shown after ${allCodesShownMs.toFixed(0)} ms; approving all`);

    const events = shown.map((s) => bed.watcher.next("authenticated", s.deviceId));
    // When the provider sent each token: the storm's floor is how fast one provider process issues 500 tokens.
    const tokensSent: number[] = [];
    const stopCounting = bed.idp.onTokenResponse((info) => {
      if (info.status === 200 && info.grantType.endsWith("device_code")) tokensSent.push(info.sentAt);
    });
    const connectionsBefore = bed.idp.tlsConnections();
    const approving = performance.now();
    await Promise.all(
      shown.map((s) =>
        bed.idp.approve(String(s.payload["userCode"]), `user-${s.deviceId}`).catch(() => undefined),
      ),
    );
    const approvedAt = performance.now();
    let authenticated = 0;
    const arrived = await within(
      Promise.all(events.map((e) => e.then((seen) => ((authenticated += 1), seen)))),
      60_000,
      `${count} authenticated events`,
    ).catch(() => undefined);
    stopCounting();
    const connectionsAfterApproval = bed.idp.tlsConnections() - connectionsBefore;
    const lastEvent = arrived ? Math.max(...arrived.map((s) => s.at)) : Number.NaN;
    const lastTokenSent = tokensSent.length > 0 ? Math.max(...tokensSent) : Number.NaN;
    const afterApproval = (arrived ?? []).map((s) => s.at - approvedAt).sort((a, b) => a - b);
    const arrivalMs = (q: number) =>
      afterApproval[Math.min(afterApproval.length - 1, Math.floor(q * afterApproval.length))] ?? Number.NaN;
    const workerRssAfterMiB = sum(pids.map(rssMiB));
    const workerPeakRssMiB = sum(pids.map(peakRssMiB));
    for (const worker of workers) worker.send("failures");
    const reports = await within(
      Promise.all(
        workers.map((worker) => worker.next<{ type: string; count: number; reasons: string[] }>("failures")),
      ),
      10_000,
      "failure count",
    );
    const failures = {
      count: sum(reports.map((r) => r.count)),
      reasons: reports.flatMap((r) => r.reasons).slice(0, 10),
    };
    const allAuthenticatedMs = lastEvent - approvedAt;
    return {
      codesShown: shown.length,
      agents: count,
      processes,
      allCodesShownMs,
      approvingMs: approvedAt - approving,
      allAuthenticatedMs,
      allAuthenticatedIntervals: allAuthenticatedMs / bed.pollIntervalMs,
      lastTokenSentMs: lastTokenSent - approvedAt,
      lastTokenToLastEventMs: lastEvent - lastTokenSent,
      connectionsAfterApproval,
      arrivalP10Ms: arrivalMs(0.1),
      arrivalP50Ms: arrivalMs(0.5),
      arrivalP90Ms: arrivalMs(0.9),
      authenticated,
      failures: failures.count + (count - authenticated),
      failureSamples: failures.reasons,
      workerRssBeforeMiB: sum(ready.map((r) => r.rssMiB)),
      workerRssAfterMiB,
      workerPeakRssMiB,
      perAgentMiB: (workerRssAfterMiB - sum(ready.map((r) => r.rssMiB))) / count,
      openFileLimit: "",
    };
  } finally {
    await Promise.all(
      workers.map(async (worker) => {
        if (worker.child.connected) worker.send("stop");
        await within(worker.exited, 60_000, "storm worker exit").catch(() => worker.child.kill("SIGKILL"));
      }),
    );
  }
}
