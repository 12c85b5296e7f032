/**
 * A three-node NATS cluster with JetStream and MQTT (Debian's nats-server), private to the calling test file:
 * each node has its own loopback client, cluster (route) and MQTT ports, its own server_name and JetStream store
 * directory, and routes to all three. MQTT in a cluster keeps sessions and retained messages in JetStream streams;
 * `stream_replicas: 3` puts them on every node, so they survive the loss of any one. A node can be killed (SIGKILL)
 * and started again on the same ports with the same store.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt from "mqtt";
import {
  NATS_BINARY,
  assertExecutable,
  freeLoopbackPort,
  spawnLogged,
  stopChild,
  type LoggedChild,
} from "./interop-brokers.js";

export interface NatsNode {
  readonly name: string;
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** SIGKILL: the node dies as in a power cut, without closing its connections. */
  kill(): Promise<void>;
  /** Starts the node again (same ports, same store) and waits until it accepts MQTT again. */
  start(): Promise<void>;
  readonly running: boolean;
  log(): string;
}

export interface NatsCluster {
  readonly nodes: readonly [NatsNode, NatsNode, NatsNode];
  /**
   * The running node that leads `$MQTT_msgs` (where QoS 1 messages are stored), by the nodes' logs: the node whose
   * loss costs an election. The first running node when no log says.
   */
  messageStreamLeader(): NatsNode;
  close(): Promise<void>;
}

const CLUSTER_SIZE = 3;
/** Three nodes elect a JetStream meta leader, then the first MQTT client makes the replicated streams. */
const READY_MS = 60_000;

/**
 * Starts the cluster on fresh ports. A port found free may be taken by another test file's process before the node
 * binds it (the node then exits: "address already in use"): then the whole cluster starts again on new ports, a
 * bounded number of times, as every node's configuration names every node's route port.
 */
export async function startNatsCluster(): Promise<NatsCluster> {
  assertExecutable(NATS_BINARY, "nats-server (Debian: apt-get install nats-server)");
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce();
    } catch (error) {
      if (attempt >= START_ATTEMPTS || !(error as Error).message.includes("address already in use"))
        throw error;
    }
  }
}

const START_ATTEMPTS = 3;

async function startNatsClusterOnce(): Promise<NatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-nats-cluster-"));
  const ports = [];
  for (let i = 0; i < CLUSTER_SIZE; i++)
    ports.push({
      client: await freeLoopbackPort(),
      route: await freeLoopbackPort(),
      mqtt: await freeLoopbackPort(),
    });
  const routes = ports.map((p) => `"nats-route://127.0.0.1:${p.route}"`).join(", ");
  const children: Array<LoggedChild | undefined> = [];
  const nodes = ports.map((p, i): NatsNode => {
    const name = `edge-signin-test-${process.pid}-n${i + 1}`;
    const conf = join(dir, `${name}.conf`);
    const config = [
      `listen: "127.0.0.1:${p.client}"`,
      `server_name: "${name}"`,
      `jetstream { store_dir: "${join(dir, `store-${i + 1}`)}" }`,
      `cluster { name: "edge-signin-test-${process.pid}", listen: "127.0.0.1:${p.route}", routes: [${routes}] }`,
      `mqtt { listen: "127.0.0.1:${p.mqtt}", stream_replicas: ${CLUSTER_SIZE}, consumer_replicas: ${CLUSTER_SIZE} }`,
      "",
    ].join("\n");
    const url = `mqtt://127.0.0.1:${p.mqtt}`;
    return {
      name,
      url,
      get running() {
        const child = children[i];
        return child !== undefined && child.process.exitCode === null && child.process.signalCode === null;
      },
      log: () => children[i]?.log() ?? "",
      async kill() {
        const child = children[i];
        if (!child || !this.running) return;
        child.process.kill("SIGKILL");
        await child.exited;
      },
      async start() {
        await writeFile(conf, config);
        children[i] = spawnLogged(NATS_BINARY, ["-c", conf], {});
        await acceptsMqtt(this, READY_MS);
      },
    };
  });
  const close = async () => {
    await Promise.all(children.map(async (child) => (child ? stopChild(child.process) : undefined)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // All three at once: JetStream waits for its peers before it places a replicated stream.
    await Promise.all(nodes.map((node) => node.start()));
  } catch (error) {
    await close();
    throw error;
  }
  const messageStreamLeader = () => {
    const running = nodes.filter((node) => node.running);
    const said = (node: NatsNode) => node.log().lastIndexOf("new stream leader for '$G > $MQTT_msgs'");
    const leader = running.find((node) => said(node) >= 0) ?? running[0];
    if (!leader) throw new Error("no NATS node is running");
    return leader;
  };
  return { nodes: nodes as unknown as [NatsNode, NatsNode, NatsNode], messageStreamLeader, close };
}

/**
 * Waits for a CONNACK from the node: before its peers agree on the replicated MQTT streams it refuses MQTT clients
 * ("no suitable peers for placement"), so this is the moment the cluster is ready, not the port being open.
 */
async function acceptsMqtt(node: NatsNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no attempt made";
  while (Date.now() < deadline) {
    if (!node.running) break;
    try {
      const client = await mqtt.connectAsync(node.url, {
        protocolVersion: 4,
        clientId: `edge-signin-ready-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
        reconnectPeriod: 0,
        connectTimeout: 3_000,
      });
      await client.endAsync(true);
      return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(300);
  }
  throw new Error(
    `NATS node ${node.name} did not accept MQTT at ${node.url} within ${timeoutMs} ms ` +
      `(${node.running ? `last error: ${last}` : "it exited"}).\n--- log (tail) ---\n${node.log().slice(-4_000)}`,
  );
}
