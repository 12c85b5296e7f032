/**
 * Figure 4 on a cluster (issue 18): the sign-in storm on a three-node NATS cluster (JetStream, MQTT), one node
 * killed (SIGKILL) at the moment of the approvals. N agents run in one child process per core
 * (test/helpers/fleet-worker.ts, the shipped library build), each with the URL list of all three nodes, its home
 * node first (agent i at home on node i mod 3). A consumer on a node that is not killed hears every display and
 * `authenticated` event. When every code is on its display, all are approved through the provider's hook while the
 * node that leads the QoS 1 message stream (the worst one to lose) is killed.
 *
 * Measured: the last approval to the last first copy of an `authenticated` event at the consumer (in polling
 * intervals, as the single-broker storm), events lost (devices whose event never came), duplicates (copies of an
 * event id beyond the first) and sign-in failures.
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt from "mqtt";
import type { DevIdentityProvider } from "../src/dev/identity-provider.js";
import { buildLibrary, startFleet, type Fleet } from "../test/helpers/fleet.js";
import { startNatsCluster, type NatsCluster, type NatsNode } from "../test/helpers/nats-cluster.js";
import { TOPIC_PREFIX } from "./lib/bed.js";

const SHOW_TIMEOUT_MS = 300_000;
/** While events are missing: quiet polling intervals (no new event) before the rest count as lost. Longer than a
 * JetStream leader election after the kill (about 12 s here), in which no event moves at all. */
const LOST_AFTER_QUIET_INTERVALS = 30;
/** After the last event: how long duplicates are still counted, in polling intervals. */
const DUPLICATE_WINDOW_INTERVALS = 10;
const HARD_CAP_MS = 300_000;

export interface ClusterStormResult {
  readonly agents: number;
  /** Child processes the agents ran in. */
  readonly processes: number;
  readonly nodes: number;
  readonly codesShown: number;
  /** Start to the last code at the consumer, ms. */
  readonly allCodesShownMs: number;
  /** Approving every code at the provider (the node was killed as this began), ms. */
  readonly approvingMs: number;
  /** The last approval to the last `authenticated` event (first copy) at the consumer, ms. */
  readonly allAuthenticatedMs: number;
  /** Same, in polling intervals. */
  readonly allAuthenticatedIntervals: number;
  readonly arrivalP50Ms: number;
  readonly arrivalP90Ms: number;
  /** Devices with at least one `authenticated` event at the consumer. */
  readonly authenticated: number;
  /** Devices whose code was shown and approved but whose event never reached the consumer within the bound. */
  readonly lost: number;
  /** Copies of an event id beyond the first. */
  readonly duplicates: number;
  /** Sign-in failures the agents reported, plus codes never shown. */
  readonly failures: number;
  readonly failureSamples: readonly string[];
  /** Times the consumer's connection closed during the run (it reconnects to its node, persistent session). */
  readonly consumerReconnects: number;
  /** Agents whose own status() said signed_in at the end. */
  readonly signedIn: number;
  /** How the bound on lost events reads, for the report. */
  readonly lostBound: string;
}

/** Every display and `authenticated` event the consumer heard, timestamped on arrival. */
class Consumer {
  readonly displays = new Map<string, { at: number; userCode: string }>();
  /** First arrival per device. */
  readonly firstEvent = new Map<string, number>();
  readonly copiesById = new Map<string, number>();
  lastArrival = 0;
  /** Times the consumer's own connection closed. */
  closes = 0;

  private constructor(readonly client: mqtt.MqttClient) {
    client.on("close", () => (this.closes += 1));
    client.on("message", (topic, payload) => {
      const at = performance.now();
      const [, deviceId, ...rest] = topic.split("/");
      if (!deviceId || payload.length === 0) return;
      const body = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
      if (rest.join("/") === "display") {
        this.displays.set(deviceId, { at, userCode: String(body["userCode"]) });
        return;
      }
      const id = String(body["id"]);
      this.copiesById.set(id, (this.copiesById.get(id) ?? 0) + 1);
      if (!this.firstEvent.has(deviceId)) this.firstEvent.set(deviceId, at);
      this.lastArrival = at;
    });
  }

  static async on(node: NatsNode): Promise<Consumer> {
    const client = await mqtt.connectAsync(node.url, {
      protocolVersion: 4,
      clientId: `bench-cluster-consumer-${process.pid}`,
      reconnectPeriod: 500,
      // A persistent session: QoS 1 events published while the consumer reconnects wait for it, as for a real one.
      clean: false,
    });
    const consumer = new Consumer(client);
    // NATS refuses a QoS 1 subscription while its JetStream consumer cannot be made yet (just after the cluster
    // formed): try again, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      try {
        await client.subscribeAsync([`${TOPIC_PREFIX}/+/display`, `${TOPIC_PREFIX}/+/events/authenticated`], {
          qos: 1,
        });
        return consumer;
      } catch (error) {
        if (attempt >= 10) {
          await client.endAsync(true);
          throw error;
        }
        await sleep(1_000);
      }
    }
  }
}

export async function runClusterStorm(
  idp: DevIdentityProvider,
  scratch: string,
  pollIntervalMs: number,
  count: number,
  progress: (line: string) => void,
  processes = Math.max(1, availableParallelism()),
): Promise<ClusterStormResult> {
  progress("cluster storm: building the library (dist/src) the fleet workers load");
  buildLibrary();
  const cluster: NatsCluster = await startNatsCluster();
  let consumer: Consumer | undefined;
  let fleet: Fleet | undefined;
  try {
    const victim = cluster.messageStreamLeader();
    const consumerNode = cluster.nodes.find((node) => node !== victim) as NatsNode;
    consumer = await Consumer.on(consumerNode);
    const urls = cluster.nodes.map((node) => node.url);
    const tag = `cstorm-${Date.now().toString(36)}`;
    const envs = Array.from({ length: count }, (_, i) => {
      const home = i % urls.length;
      const deviceId = `${tag}-${i}`;
      return {
        EDGE_SIGNIN_AUTHORITY: idp.authority,
        EDGE_SIGNIN_CLIENT_ID: idp.clientId,
        EDGE_SIGNIN_IDP_CA_FILE: idp.caFile,
        EDGE_SIGNIN_TOPIC_PREFIX: TOPIC_PREFIX,
        EDGE_SIGNIN_DEVICE_ID: deviceId,
        EDGE_SIGNIN_STATE_DIR: join(scratch, "cluster-storm", deviceId),
        EDGE_SIGNIN_MQTT_URL: [...urls.slice(home), ...urls.slice(0, home)].join(","),
        EDGE_SIGNIN_LOG_LEVEL: "warn",
      };
    });
    const ids = envs.map((env) => env.EDGE_SIGNIN_DEVICE_ID);
    fleet = await startFleet(envs, processes);
    progress(`cluster storm: ${count} agents built in ${processes} processes; starting`);
    const startedAt = performance.now();
    const startFailures = await fleet.start();
    const c = consumer;
    const showDeadline = performance.now() + SHOW_TIMEOUT_MS;
    let lastTick = performance.now();
    while (ids.some((id) => !c.displays.has(id)) && performance.now() < showDeadline) {
      if (performance.now() - lastTick > 10_000) {
        progress(`cluster storm: ${c.displays.size}/${count} codes shown`);
        lastTick = performance.now();
      }
      await sleep(100);
    }
    const shownIds = ids.filter((id) => c.displays.has(id));
    const allCodesShownMs =
      Math.max(...shownIds.map((id) => c.displays.get(id)?.at ?? Number.NaN)) - startedAt;
    progress(
      `cluster storm: ${shownIds.length} codes shown after ${allCodesShownMs.toFixed(0)} ms; ` +
        `approving all and killing ${victim.name}`,
    );

    const approving = performance.now();
    const killed = victim.kill();
    await Promise.all(
      shownIds.map((id) =>
        idp.approve(c.displays.get(id)?.userCode ?? "", `user-${id}`).catch(() => undefined),
      ),
    );
    const approvedAt = performance.now();
    await killed;

    // Wait for every event; stop when all came and the duplicate window passed, or when nothing new came for
    // LOST_AFTER_QUIET_INTERVALS intervals (the rest are lost), or at the hard cap.
    for (;;) {
      await sleep(100);
      const now = performance.now();
      const quietSince = Math.max(c.lastArrival, approvedAt);
      const all = shownIds.every((id) => c.firstEvent.has(id));
      if (all && now - c.lastArrival >= DUPLICATE_WINDOW_INTERVALS * pollIntervalMs) break;
      if (!all && now - quietSince >= LOST_AFTER_QUIET_INTERVALS * pollIntervalMs) break;
      if (now - approvedAt > HARD_CAP_MS) break;
    }
    const arrivals = shownIds.flatMap((id) => {
      const at = c.firstEvent.get(id);
      return at === undefined ? [] : [at - approvedAt];
    });
    arrivals.sort((a, b) => a - b);
    const at = (q: number) =>
      arrivals[Math.min(arrivals.length - 1, Math.floor(q * arrivals.length))] ?? Number.NaN;
    const lastMs = arrivals.length > 0 ? (arrivals[arrivals.length - 1] as number) : Number.NaN;
    const duplicates = [...c.copiesById.values()].reduce((sum, copies) => sum + copies - 1, 0);
    const status = await fleet.status();
    const failures = [...new Set([...startFailures, ...status.failures])];
    return {
      agents: count,
      processes,
      nodes: cluster.nodes.length,
      codesShown: shownIds.length,
      allCodesShownMs,
      approvingMs: approvedAt - approving,
      allAuthenticatedMs: lastMs,
      allAuthenticatedIntervals: lastMs / pollIntervalMs,
      arrivalP50Ms: at(0.5),
      arrivalP90Ms: at(0.9),
      authenticated: arrivals.length,
      lost: shownIds.length - arrivals.length,
      duplicates,
      failures: failures.length + (count - shownIds.length),
      failureSamples: failures.slice(0, 10),
      consumerReconnects: c.closes,
      signedIn: status.states.filter((s) => s.state === "signed_in").length,
      lostBound: `${LOST_AFTER_QUIET_INTERVALS} polling intervals without a new event`,
    };
  } finally {
    await fleet?.stop().catch(() => undefined);
    await consumer?.client.endAsync(true).catch(() => undefined);
    await cluster.close();
  }
}
