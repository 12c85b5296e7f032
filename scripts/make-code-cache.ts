/**
 * Writes the V8 code cache of the agent's bundle beside it (`dist/bundle/agent.cjs.cache`), read-only, for that
 * exact bundle (src/cli/code-cache.ts). scripts/bundle.ts runs this at build time; the Node that runs it should be
 * the one that will run the bundle: the image's build stage is. A package installed under another Node compiles
 * from source (V8 refuses the cache).
 *
 * A training run: the agent bundle runs in a fresh process (scripts/code-cache-run.ts) against the development
 * identity provider and the embedded broker (both development dependencies, here at build time only), through a
 * first code on its display and a sign-in; then that process writes V8's code for every function of the bundle
 * compiled so far. A real start then compiles almost nothing before the first code. Should the run fail (no
 * development dependencies, no loopback), the cache covers the module set-up only, as before, and the build says so.
 *
 *   node --import tsx scripts/make-code-cache.ts dist/bundle/agent.cjs
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MqttClient } from "mqtt";

/** The whole training run, bounded: a build never hangs on it. */
const TRAINING_TIMEOUT_MS = 60_000;
const RUNNER = fileURLToPath(new URL("code-cache-run.ts", import.meta.url));

const bundleFile = process.argv[2];
if (!bundleFile) throw new Error("usage: make-code-cache.ts BUNDLE_FILE");

try {
  await train(bundleFile);
  process.stderr.write(`code cache: ${bundleFile}.cache (set-up, first code and sign-in)\n`);
} catch (error) {
  process.stderr.write(
    `code cache: the training run failed (${error instanceof Error ? error.message : String(error)}); ` +
      "the cache covers the bundle's module set-up only\n",
  );
  await runToExit(fork(RUNNER, ["setup", bundleFile], { execArgv: ["--import", "tsx"], stdio: "inherit" }));
}

async function train(bundle: string): Promise<void> {
  const [{ startEmbeddedBroker }, { startDevIdentityProvider }, { deviceTopics }, mqtt] = await Promise.all([
    import("../src/dev/embedded-broker.js"),
    import("../src/dev/identity-provider.js"),
    import("../src/mqtt/topics.js"),
    import("mqtt"),
  ]);
  const scratch = await mkdtemp(join(tmpdir(), "edge-signin-code-cache-"));
  // Whatever started is stopped again, however far the run got: a build must never hang on a server left open.
  const started: Array<{ close(): Promise<unknown> }> = [];
  let child: ChildProcess | undefined;
  const deadline = AbortSignal.timeout(TRAINING_TIMEOUT_MS);
  try {
    const broker = await startEmbeddedBroker();
    started.push(broker);
    const idp = await startDevIdentityProvider({ pollIntervalSeconds: 1, certDir: scratch });
    started.push(idp);
    const topics = deviceTopics("edge-signin-build", "code-cache");
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    started.push({ close: () => watcher.endAsync(true) });
    const seen = messages(watcher, [topics.display, topics.event("authenticated")]);
    await watcher.subscribeAsync([topics.display, topics.event("authenticated")], { qos: 1 });
    child = fork(RUNNER, ["train", bundle], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      env: {
        PATH: process.env["PATH"] ?? "",
        EDGE_SIGNIN_AUTHORITY: idp.authority,
        EDGE_SIGNIN_CLIENT_ID: idp.clientId,
        EDGE_SIGNIN_DEVICE_ID: "code-cache",
        EDGE_SIGNIN_TOPIC_PREFIX: "edge-signin-build",
        EDGE_SIGNIN_MQTT_URL: broker.url,
        EDGE_SIGNIN_STATE_DIR: join(scratch, "state"),
        // As a device trusts its provider: through Node's own store, not the agent's IDP_CA_FILE setting.
        NODE_EXTRA_CA_CERTS: idp.caFile,
      },
    });
    const exited = runToExit(child);
    const display = await bounded(seen(topics.display), exited, deadline, "the code on the display");
    await idp.approve(String(display["userCode"]), "alice");
    await bounded(seen(topics.event("authenticated")), exited, deadline, "the authenticated event");
    // The run exits 0 once the cache is written.
    child.send("write");
    await bounded(exited, new Promise<never>(() => undefined), deadline, "code cache written");
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const part of started.reverse()) await part.close().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The first JSON payload on each topic, by topic (a retained empty payload, a clear, is not one). */
function messages(
  client: MqttClient,
  wanted: readonly string[],
): (topic: string) => Promise<Record<string, unknown>> {
  const waiting = new Map<string, (payload: Record<string, unknown>) => void>();
  const early = new Map<string, Record<string, unknown>>();
  client.on("message", (topic, payload) => {
    if (!wanted.includes(topic) || payload.length === 0) return;
    const parsed = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
    const waiter = waiting.get(topic);
    if (waiter) waiter(parsed);
    else early.set(topic, parsed);
  });
  return (topic) => {
    const got = early.get(topic);
    return got ? Promise.resolve(got) : new Promise((resolve) => waiting.set(topic, resolve));
  };
}

/** `promise`, unless the run ended first or the deadline passed: then an error that says what was awaited. */
function bounded<T>(
  promise: Promise<T>,
  exited: Promise<void>,
  deadline: AbortSignal,
  what: string,
): Promise<T> {
  return Promise.race([
    promise,
    exited.then(() => Promise.reject(new Error(`the agent ended before ${what}`))),
    new Promise<never>((_, reject) => {
      if (deadline.aborted) reject(new Error(`no ${what} within ${TRAINING_TIMEOUT_MS} ms`));
      deadline.addEventListener("abort", () =>
        reject(new Error(`no ${what} within ${TRAINING_TIMEOUT_MS} ms`)),
      );
    }),
  ]);
}

function runToExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`code-cache-run exited with ${code ?? signal}`)),
    );
  });
}
