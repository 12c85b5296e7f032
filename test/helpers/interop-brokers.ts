/**
 * Brokers other than Mosquitto, each private to the calling test file: NATS with MQTT (Debian's nats-server),
 * RabbitMQ's MQTT plugin (a private node of Debian's rabbitmq-server) and aedes (in process). Each runs on free
 * loopback ports with its own configuration and data directory, never touches the system services, and fails
 * loudly (with its log) when it cannot start.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Aedes, type AuthErrorCode } from "aedes";
import mqtt from "mqtt";

export interface InteropBroker {
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** For the test's name and messages, e.g. "NATS 2.9.10". */
  readonly name: string;
  close(): Promise<void>;
}

export const NATS_BINARY = "/usr/sbin/nats-server";
const RABBITMQ_SBIN = "/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin";
const NATS_READY_MS = 20_000;
/** RabbitMQ boots an Erlang VM, Mnesia and the plugin: slow, and slower still on a busy 2-core machine. */
const RABBITMQ_READY_MS = 90_000;

/** Processes still running when the test worker exits; killed so no broker outlives its test run. */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** NATS server 2.9 with its MQTT listener (MQTT 3.1.1 only; it needs JetStream and a server name). */
export async function startNats(): Promise<InteropBroker> {
  assertExecutable(NATS_BINARY, "nats-server (Debian: apt-get install nats-server)");
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-nats-"));
  const [clientPort, mqttPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const config = [
    `listen: "127.0.0.1:${clientPort}"`,
    `server_name: "edge-signin-test-${process.pid}"`,
    `jetstream { store_dir: "${join(dir, "jetstream")}" }`,
    `mqtt { listen: "127.0.0.1:${mqttPort}" }`,
    "",
  ].join("\n");
  await writeFile(join(dir, "nats.conf"), config);
  const child = spawnLogged(NATS_BINARY, ["-c", join(dir, "nats.conf")], {});
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  return await readyOrFail("NATS", child, url, 4, NATS_READY_MS, async () => {
    await stopChild(child.process);
    await rm(dir, { recursive: true, force: true });
  });
}

/**
 * A private RabbitMQ node with the MQTT plugin: its own node name, AMQP, distribution, epmd and MQTT ports, and its
 * own Mnesia, log and plugins files under a temporary directory. Started through the versioned sbin script, not
 * the wrapper in /usr/sbin, which would switch to the system `rabbitmq` user.
 */
export async function startRabbitMq(): Promise<InteropBroker> {
  assertExecutable(
    join(RABBITMQ_SBIN, "rabbitmq-server"),
    "rabbitmq-server (Debian: apt-get install rabbitmq-server)",
  );
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-rabbitmq-"));
  const [amqpPort, distPort, epmdPort, mqttPort] = [
    await freeLoopbackPort(),
    await freeLoopbackPort(),
    await freeLoopbackPort(),
    await freeLoopbackPort(),
  ];
  await writeFile(join(dir, "enabled_plugins"), "[rabbitmq_mqtt].\n");
  await writeFile(
    join(dir, "rabbitmq.conf"),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
      "mqtt.allow_anonymous = true",
      "loopback_users = none",
      "management.tcp.port = 0",
      "",
    ].join("\n"),
  );
  const nodeName = `edge-signin-test-${process.pid}-${mqttPort}@localhost`;
  const env = {
    HOME: dir,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_LOGS: "-",
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_PID_FILE: join(dir, "rabbitmq.pid"),
  };
  const child = spawnLogged(join(RABBITMQ_SBIN, "rabbitmq-server"), [], env);
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  return await readyOrFail("RabbitMQ 3.10", child, url, 4, RABBITMQ_READY_MS, async () => {
    await stopChild(child.process, 30_000);
    // The Erlang port mapper this node started on its own port outlives the node: end it by that port.
    spawnSync("epmd", ["-port", String(epmdPort), "-kill"], { stdio: "ignore", timeout: 5_000 });
    await rm(dir, { recursive: true, force: true });
  });
}

/**
 * aedes 1.x in this process on a free loopback port (MQTT 3.1.1 only). `refuse` may refuse a connection with a
 * CONNACK return code (e.g. 3, server unavailable), the way a busy broker does; `refuseSubscribe` a subscription.
 */
export async function startAedes(
  options: {
    refuse?: (clientId: string) => AuthErrorCode | undefined;
    /** True: answer this SUBSCRIBE with 0x80 (failure), as a NATS cluster does while it elects a leader. */
    refuseSubscribe?: (clientId: string, filter: string) => boolean;
  } = {},
): Promise<InteropBroker & { readonly aedes: Aedes }> {
  const broker = await Aedes.createBroker({
    authorizeSubscribe: (client, subscription, done) => {
      if (options.refuseSubscribe?.(client.id, subscription.topic)) done(null, null);
      else done(null, subscription);
    },
    authenticate: (client, _user, _password, done) => {
      const code = options.refuse?.(client.id);
      if (code === undefined) done(null, true);
      else done(Object.assign(new Error("refused by the test"), { returnCode: code }), false);
    },
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    name: "aedes",
    aedes: broker,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

export interface LoggedChild {
  readonly process: ChildProcess;
  log(): string;
  readonly exited: Promise<string>;
}

export function spawnLogged(binary: string, args: string[], env: Record<string, string>): LoggedChild {
  const proc = spawn(binary, args, {
    env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveChildren.add(proc);
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString("utf8"))
      .split("\n")
      .filter((line) => !line.includes("Error trying to connect to route"))
      .join("\n")
      .slice(-8_000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<string>((resolve) => {
    proc.once("error", (error) => resolve(`could not start ${binary}: ${error.message}`));
    proc.once("exit", (code, signal) => {
      liveChildren.delete(proc);
      resolve(`${binary} exited (code ${String(code)}, signal ${String(signal)})`);
    });
  });
  return { process: proc, log: () => log, exited };
}

/** Waits for a full CONNECT/CONNACK; a broker that exits or stays silent fails the test with its log. */
export async function readyOrFail(
  name: string,
  child: LoggedChild,
  url: string,
  protocolVersion: 4 | 5,
  timeoutMs: number,
  close: () => Promise<void>,
): Promise<InteropBroker> {
  let exitedWhy: string | undefined;
  void child.exited.then((why) => (exitedWhy = why));
  const deadline = Date.now() + timeoutMs;
  let lastError = "no attempt made";
  while (Date.now() < deadline && exitedWhy === undefined) {
    try {
      await connectOnce(url, protocolVersion);
      return { url, name, close };
    } catch (error) {
      lastError = (error as Error).message;
    }
    await sleep(250);
  }
  await close();
  throw new Error(
    `${name} did not accept MQTT connections at ${url} within ${timeoutMs} ms ` +
      `(${exitedWhy ?? `last error: ${lastError}`}).\n--- ${name} log (tail) ---\n${child.log().slice(-4_000)}`,
  );
}

async function connectOnce(url: string, protocolVersion: 4 | 5): Promise<void> {
  const client = mqtt.connect(url, {
    protocolVersion,
    clientId: `edge-signin-ready-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    reconnectPeriod: 0,
    connectTimeout: 2_000,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
      client.once("close", () => reject(new Error("connection closed before CONNACK")));
    });
  } finally {
    client.end(true);
  }
}

export async function stopChild(proc: ChildProcess, graceMs = 5_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const done = await Promise.race([exited.then(() => true), sleep(graceMs, false, { ref: false })]);
  if (!done) {
    proc.kill("SIGKILL");
    await exited;
  }
}

export function assertExecutable(path: string, what: string): void {
  try {
    accessSync(path, fsConstants.X_OK);
  } catch {
    throw new Error(`cannot start the test broker: ${path} is missing; install ${what} (.ci/run does)`);
  }
}
