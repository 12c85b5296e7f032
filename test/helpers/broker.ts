/**
 * A real Mosquitto for integration tests, private to the calling test file.
 *
 * Order of preference:
 *  1. `EDGE_SIGNIN_TEST_MQTT_URL` — an externally managed broker; nothing is started, stop()/start() throw.
 *  2. A container runtime (detected by testcontainers) — `eclipse-mosquitto:2` in a container (the official image,
 *     or the stand-in that docker/stand-ins/build.sh makes where no image registry is reachable).
 *  3. Only where no container engine answers at all: the local `mosquitto` binary on a free loopback port with
 *     a generated config, said loudly on stderr (an error instead with EDGE_SIGNIN_TEST_REQUIRE_CONTAINER=1).
 *
 * Never the system broker on 1883: tests publish retained messages and would leave them behind, and its
 * configuration (auth, persistence) is not ours to rely on.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt from "mqtt";
import { GenericContainer, Wait, getContainerRuntimeClient } from "testcontainers";
import type { StartedTestContainer } from "testcontainers";

export type BrokerStop = "kill" | "shutdown";

export interface TestBroker {
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** 'container' | 'local-binary' | 'external' */
  readonly kind: string;
  /**
   * Stop the broker process/container but keep the SAME port so clients can reconnect after start(). `kill` (the
   * default): SIGKILL, an outage with no last word (power lost). `shutdown`: SIGTERM, as a restart or an upgrade
   * stops it: Mosquitto then sends the will of every client still connected (the agent's `offline`) before it
   * closes their connections.
   */
  stop(how?: BrokerStop): Promise<void>;
  /** Start again after stop() on the same port (for outage tests). */
  start(): Promise<void>;
  /** Stop for good and remove temp files. */
  close(): Promise<void>;
}

// testcontainers' Ryuk (the reaper of containers left behind) is an image it would pull from a registry, which
// an air-gapped machine cannot; every broker here removes its own container in close(). Set here, not only in
// vitest's config, because the bench starts its brokers through this module too.
process.env["TESTCONTAINERS_RYUK_DISABLED"] ??= "true";

export const EXTERNAL_URL_ENV = "EDGE_SIGNIN_TEST_MQTT_URL";
/** Set to 1 (CI does) to fail rather than fall back to the local binary when no container engine answers. */
export const REQUIRE_CONTAINER_ENV = "EDGE_SIGNIN_TEST_REQUIRE_CONTAINER";
const CONTAINER_IMAGE = "eclipse-mosquitto:2";
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_TAIL_LINES = 40;

export interface TestBrokerOptions {
  /** Extra mosquitto.conf lines for the listener, e.g. `max_packet_size 1000`. Not for an external broker. */
  readonly extraConfig?: readonly string[];
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const external = process.env[EXTERNAL_URL_ENV]?.trim();
  if (external && options.extraConfig?.length)
    throw new Error(`a test that needs its own broker configuration cannot run on ${EXTERNAL_URL_ENV}`);
  if (external) return startExternal(external);
  const extra = options.extraConfig ?? [];

  let runtimeProblem: string;
  try {
    await getContainerRuntimeClient();
    return await startContainer(extra);
  } catch (err) {
    // Only "no runtime at all" may fall back; a runtime that exists but fails (pull error, port clash)
    // must surface, or a CI job would silently test against something other than what it claims.
    const message = errorMessage(err);
    if (!/Could not find a working container runtime strategy/i.test(message)) throw err;
    runtimeProblem = message;
  }

  if (process.env[REQUIRE_CONTAINER_ENV] === "1") {
    throw new Error(
      `${REQUIRE_CONTAINER_ENV}=1 asks for the broker in a container, but no container runtime answers ` +
        `(testcontainers: "${runtimeProblem}"). Start the engine (.ci/run starts Debian's dockerd).`,
    );
  }
  const binary = findMosquittoBinary();
  if (!binary) {
    throw new Error(
      "Cannot start a test MQTT broker: no container runtime is available " +
        `(testcontainers: "${runtimeProblem}") and no mosquitto binary was found ` +
        `(looked in /usr/sbin, /usr/local/sbin, /opt/homebrew/sbin and PATH). ` +
        "Install Mosquitto (Debian/Ubuntu: `sudo apt-get install mosquitto`; macOS: `brew install mosquitto`), " +
        `start Docker/Podman, or set ${EXTERNAL_URL_ENV}=mqtt://host:port to use an existing broker.`,
    );
  }
  reportFallbackOnce(runtimeProblem, binary);
  return startLocalBinary(binary, extra);
}

let fallbackReported = false;
/** Said once per test file, on stderr, so a run that did not use a container says so where people look. */
function reportFallbackOnce(runtimeProblem: string, binary: string): void {
  if (fallbackReported) return;
  fallbackReported = true;
  process.stderr.write(
    `test broker: NO CONTAINER ENGINE (${runtimeProblem}); falling back to the local ${binary}. ` +
      `The Mosquitto container path is not being tested here; set ${REQUIRE_CONTAINER_ENV}=1 to make this an error.\n`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// External broker

async function startExternal(url: string): Promise<TestBroker> {
  // Fail here, with the variable named, rather than in the first test with a bare ECONNREFUSED.
  await waitUntilAcceptingMqtt(url, () => `(external broker from ${EXTERNAL_URL_ENV}; no log available)`);
  const unsupported = (op: string) => (): Promise<void> =>
    Promise.reject(
      new Error(
        `TestBroker.${op}() is not supported for an external broker (${EXTERNAL_URL_ENV}=${url}); ` +
          `unset ${EXTERNAL_URL_ENV} to let the tests run their own Mosquitto.`,
      ),
    );
  return {
    url,
    kind: "external",
    stop: unsupported("stop"),
    start: unsupported("start"),
    close: () => Promise.resolve(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Container: the official image, or the local stand-in docker/stand-ins/build.sh makes where no registry answers

const CONTAINER_CONFIG = [
  "listener 1883",
  "allow_anonymous true",
  "persistence false",
  // stderr: never buffered, whatever the image's C library does with stdout when it is not a terminal.
  "log_dest stderr",
  "",
].join("\n");

async function startContainer(extra: readonly string[]): Promise<TestBroker> {
  // A fixed host port is what keeps the URL valid across stop()/start(): with an ephemeral binding
  // Docker hands out a new host port whenever the container starts again (moby/moby#31926). The port is picked free
  // on this machine, which is right for a local daemon; for a remote DOCKER_HOST it is only a good guess.
  const hostPort = await findFreeLoopbackPort();
  const container: StartedTestContainer = await new GenericContainer(CONTAINER_IMAGE)
    .withExposedPorts({ container: 1883, host: hostPort })
    .withCopyContentToContainer([
      {
        content: CONTAINER_CONFIG + extra.map((line) => `${line}\n`).join(""),
        target: "/mosquitto/config/mosquitto.conf",
      },
    ])
    .withWaitStrategy(Wait.forLogMessage(/mosquitto version .* running/))
    .start();

  const host = container.getHost() === "localhost" ? "127.0.0.1" : container.getHost();
  const url = `mqtt://${host}:${container.getMappedPort(1883)}`;
  const logTail = async (): Promise<string> => {
    try {
      const client = await getContainerRuntimeClient();
      const stream = await client.container.logs(client.container.getById(container.getId()), {
        tail: LOG_TAIL_LINES,
      });
      return await readStreamBriefly(stream);
    } catch (err) {
      return `(container logs unavailable: ${errorMessage(err)})`;
    }
  };

  let closed = false;
  const runtimeContainer = async () => {
    const client = await getContainerRuntimeClient();
    return { client, handle: client.container.getById(container.getId()) };
  };

  await waitUntilAcceptingMqtt(url, logTail);
  return {
    url,
    kind: "container",
    // StartedTestContainer.stop() would also remove the container, and restart() has no gap in which a
    // test can observe the outage, so stop and start go to the runtime client directly. The container
    // (and its explicit port binding) survives, so start() brings the broker back on the same port.
    async stop(how: BrokerStop = "kill") {
      assertOpen(closed);
      const { client, handle } = await runtimeContainer();
      // Not `docker stop -t 0`: that is SIGTERM and at once SIGKILL, and whether Mosquitto sends the wills in
      // between depends on how busy the machine is. (testcontainers takes the timeout in ms.)
      if (how === "shutdown") await client.container.stop(handle, { timeout: STOP_TIMEOUT_MS });
      else {
        await handle.kill({ signal: "SIGKILL" });
        await handle.wait();
      }
    },
    async start() {
      assertOpen(closed);
      const { client, handle } = await runtimeContainer();
      await client.container.start(handle);
      await waitUntilAcceptingMqtt(url, logTail);
    },
    async close() {
      if (closed) return;
      closed = true;
      await container.stop({ timeout: 0, remove: true });
    },
  };
}

async function readStreamBriefly(stream: NodeJS.ReadableStream): Promise<string> {
  // Docker log streams with `follow: false` end on their own; the timeout only guards against one that
  // does not, so a failing readiness check can still report.
  const chunks: string[] = [];
  stream.on("data", (chunk: Buffer | string) => chunks.push(chunk.toString()));
  await Promise.race([
    new Promise<void>((resolve) => {
      stream.once("end", () => resolve());
      stream.once("error", () => resolve());
    }),
    // Unref'd: a guard timer must not keep the test worker alive after the race is decided.
    sleep(2_000, undefined, { ref: false }),
  ]);
  return chunks.join("");
}

// ---------------------------------------------------------------------------------------------------------
// Local binary

export function findMosquittoBinary(): string | undefined {
  const candidates = [
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
    ...(process.env.PATH ?? "")
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, "mosquitto")),
  ];
  return candidates.find((path) => {
    try {
      accessSync(path, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Processes still running when the test worker exits; killed so no broker outlives its test run. */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

async function startLocalBinary(binary: string, extra: readonly string[]): Promise<TestBroker> {
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-mosquitto-"));
  const configPath = join(dir, "mosquitto.conf");
  const log = new LogRing(LOG_TAIL_LINES * 5);
  let child: ChildProcess | undefined;
  let port = 0;
  let closed = false;

  const launch = async (): Promise<void> => {
    const proc = spawn(binary, ["-c", configPath], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    liveChildren.add(proc);
    proc.stdout?.on("data", (chunk: Buffer) => log.push(chunk));
    proc.stderr?.on("data", (chunk: Buffer) => log.push(chunk));
    const exited = new Promise<string>((resolve) => {
      proc.once("error", (err) => resolve(`could not spawn ${binary}: ${err.message}`));
      proc.once("exit", (code, signal) => {
        liveChildren.delete(proc);
        resolve(`mosquitto exited (code ${String(code)}, signal ${String(signal)})`);
      });
    });
    const url = `mqtt://127.0.0.1:${port}`;
    // Racing readiness against exit turns "port taken" or a bad config into an immediate, explained
    // failure instead of a 10 s timeout.
    const early = exited.then((why) => {
      throw new Error(`${why} before accepting connections on ${url}.\n--- mosquitto log ---\n${log.tail()}`);
    });
    // Stops the readiness loop once the process is known dead, instead of letting it poll on unseen.
    const giveUp = new AbortController();
    const ready = waitUntilAcceptingMqtt(url, () => log.tail(), giveUp.signal);
    try {
      await Promise.race([ready, early]);
    } catch (err) {
      giveUp.abort();
      await terminate(proc);
      throw err;
    } finally {
      // The race's loser must not become an unhandled rejection (`early` rejects on every later stop()).
      ready.catch(() => undefined);
      early.catch(() => undefined);
    }
  };

  // The free port is only free at the moment it was probed; another process can take it before
  // mosquitto binds. Retrying on exactly that failure makes the race irrelevant in practice; any other
  // failure would only repeat itself.
  for (let attempt = 1; ; attempt++) {
    port = await findFreeLoopbackPort();
    await writeFile(configPath, localConfig(port) + extra.map((line) => `${line}\n`).join(""));
    try {
      await launch();
      break;
    } catch (err) {
      const portTaken = err instanceof Error && /Address already in use/i.test(err.message);
      if (portTaken && attempt < 5) continue;
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  return {
    url: `mqtt://127.0.0.1:${port}`,
    kind: "local-binary",
    async stop(how: BrokerStop = "kill") {
      assertOpen(closed);
      if (child) await terminate(child, how === "shutdown" ? "SIGTERM" : "SIGKILL");
      child = undefined;
    },
    async start() {
      assertOpen(closed);
      if (child && child.exitCode === null && child.signalCode === null) {
        throw new Error("TestBroker.start(): the broker is already running; call stop() first.");
      }
      // Same port on purpose: clients under test reconnect to the URL they were given.
      await launch();
    },
    async close() {
      if (closed) return;
      closed = true;
      if (child) await terminate(child);
      child = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function localConfig(port: number): string {
  return [
    `listener ${port} 127.0.0.1`,
    "allow_anonymous true",
    "persistence false",
    "log_dest stderr",
    "log_type all",
    "",
  ].join("\n");
}

async function terminate(proc: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill(signal);
  // Unref'd so a clean exit does not leave a 5 s timer holding the worker open.
  const result = await Promise.race([
    exited.then(() => "exited" as const),
    sleep(STOP_TIMEOUT_MS, undefined, { ref: false }),
  ]);
  if (result !== "exited") {
    proc.kill("SIGKILL");
    await exited;
  }
}

class LogRing {
  private lines: string[] = [];
  private partial = "";
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    const text = this.partial + chunk.toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    this.lines.push(...parts);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  tail(n = LOG_TAIL_LINES): string {
    const all = this.partial ? [...this.lines, this.partial] : this.lines;
    return all.slice(-n).join("\n") || "(no output)";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shared

function findFreeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not determine a free port"));
      });
    });
  });
}

/**
 * A listening socket is not yet a working broker (config still loading, auth plugins), so readiness
 * means a full MQTT CONNECT/CONNACK.
 */
async function waitUntilAcceptingMqtt(
  url: string,
  logTail: () => string | Promise<string>,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = "no attempt made";
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    const client = mqtt.connect(url, {
      clientId: `edge-signin-ready-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
      reconnectPeriod: 0,
      connectTimeout: Math.max(500, Math.min(2_000, deadline - Date.now())),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
        client.once("close", () => reject(new Error("connection closed before CONNACK")));
      });
      await client.endAsync();
      return;
    } catch (err) {
      lastError = errorMessage(err);
      client.end(true);
    }
    await sleep(100);
  }
  throw new Error(
    `MQTT broker at ${url} did not accept connections within ${READY_TIMEOUT_MS} ms ` +
      `(last error: ${lastError}).\n--- broker log (tail) ---\n${await logTail()}`,
  );
}

function assertOpen(closed: boolean): void {
  if (closed) throw new Error("TestBroker has been closed");
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // Node's AggregateError (e.g. ECONNREFUSED on both ::1 and 127.0.0.1) has an empty message.
    if (!err.message && err instanceof AggregateError) return err.errors.map(errorMessage).join("; ");
    return err.message || err.name;
  }
  return String(err);
}
