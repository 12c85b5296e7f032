import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll } from "vitest";
import { Agent } from "../../src/agent.js";
import { type Config, loadConfig } from "../../src/config/index.js";
import {
  startDevIdentityProvider,
  type DevIdentityProvider,
  type DevIdentityProviderOptions,
} from "../../src/dev/identity-provider.js";
import { createLogger } from "../../src/util/logger.js";
import type { Logger } from "pino";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type EventType,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { startTestBroker, type TestBroker } from "./broker.js";
import { startAgentProcess, type AgentProcess } from "./agent-process.js";
import { connectProbe, type MqttProbe } from "./mqtt-probe.js";

/** A real Mosquitto, a real OpenID provider over HTTPS, and a state directory: what every agent test stands on. */
export interface TestBed {
  readonly broker: TestBroker;
  readonly idp: DevIdentityProvider;
  readonly stateDir: string;
  /** Environment for an agent on this bed (the same variables a device maker sets). */
  env(overrides?: Record<string, string>): Record<string, string>;
  config(overrides?: Record<string, string>): Config;
  close(): Promise<void>;
}

let counter = 0;

export async function startTestBed(idpOptions: DevIdentityProviderOptions = {}): Promise<TestBed> {
  const stateDir = await mkdtemp(join(tmpdir(), "edge-signin-test-"));
  const [broker, idp] = await Promise.all([
    startTestBroker(),
    startDevIdentityProvider({ pollIntervalSeconds: 1, certDir: stateDir, ...idpOptions }),
  ]);
  const env = (overrides: Record<string, string> = {}) => ({
    EDGE_SIGNIN_AUTHORITY: idp.authority,
    EDGE_SIGNIN_CLIENT_ID: idp.clientId,
    EDGE_SIGNIN_DEVICE_ID: `tv-${process.pid}-${++counter}`,
    EDGE_SIGNIN_MQTT_URL: broker.url,
    // Each agent its own state directory (its own token cache and lock); reuse one env() for a restart.
    EDGE_SIGNIN_STATE_DIR: join(stateDir, `state-${counter}`),
    // Each agent its own token socket, too (the default is one per machine).
    EDGE_SIGNIN_TOKEN_SOCKET: join(stateDir, `run-${counter}`, "token.sock"),
    EDGE_SIGNIN_IDP_CA_FILE: idp.caFile,
    // A provider that emulates Entra is driven through MSAL's own device flow, as real Entra is; an RFC 8628
    // provider is left to `auto`, which picks RFC 8628 mode for a non-Microsoft host.
    ...((idpOptions.dialect ?? "entra") === "entra" ? { EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "entra" } : {}),
    EDGE_SIGNIN_LOG_LEVEL: "debug",
    EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "0.2",
    EDGE_SIGNIN_RETRY_MAX_SECONDS: "1",
    ...overrides,
  });
  return {
    broker,
    idp,
    stateDir,
    env,
    config: (overrides) => loadConfig(env(overrides)),
    async close() {
      await Promise.all([broker.close(), idp.close()]);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export interface UseTestBedOptions {
  /** The identity provider's options (dialect, code lifetime, ...), as for startTestBed. */
  readonly idp?: DevIdentityProviderOptions;
  /** Connect a probe subscribed to `edge-signin/#` (the default); `false` for a bed without one. */
  readonly probe?: boolean;
}

/** What useTestBed gives a describe block; `bed` and `probe` may be used only inside its tests and hooks. */
export interface UsedTestBed {
  /** The block's bed (without close(): the block's afterAll closes it). */
  readonly bed: Omit<TestBed, "close">;
  /** A client subscribed to `edge-signin/#` on the bed's broker since before the first test. */
  readonly probe: MqttProbe;
  /** A new agent (not started yet); it is stopped after the test that made it. */
  readonly newAgent: (config: Config, logger?: Logger) => Agent;
  /** Runs `cleanup` after the current test; the latest registered runs first, as with `try`/`finally`. */
  readonly afterThisTest: (cleanup: () => unknown) => void;
  /**
   * Starts `edge-signin agent` as a process running the shipped bundle, on the bed's broker and provider with
   * `env(overrides)`, and a probe on its device's topics; both are ended after the test (SIGKILL if still up).
   */
  readonly startAgent: (overrides?: Record<string, string>) => Promise<WatchedAgentProcess>;
}

/** An agent process (the shipped bundle, test/helpers/agent-process.ts) and a probe on its device's topics. */
export interface WatchedAgentProcess extends AgentProcess {
  /** Subscribed to `{base}/#` since before the agent started. */
  readonly probe: MqttProbe;
  /** The next non-empty prompt on the display topic. */
  prompt(timeoutMs?: number): Promise<DisplayPayload>;
  /** The next event of this type. */
  event<T extends EventType>(type: T, timeoutMs?: number): Promise<EventPayload<T>>;
  /** The next retained state that passes the predicate. */
  state(predicate: (state: StatePayload) => boolean, timeoutMs?: number): Promise<StatePayload>;
}

const PROCESS_WAIT_MS = 30_000;

/**
 * The set-up most agent tests share, as vitest hooks in the calling describe block: a bed (beforeAll), a probe
 * on `edge-signin/#` (beforeAll), the agents and cleanups of each test undone after it (afterEach), and the
 * probe and bed closed (afterAll). Hooks the block registers after this call run after these before-hooks
 * and before these after-hooks (vitest's default `stack` order).
 */
export function useTestBed(options: UseTestBedOptions = {}): UsedTestBed {
  let started: TestBed | undefined;
  let connected: MqttProbe | undefined;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    started = await startTestBed(options.idp);
    if (options.probe === false) return;
    connected = await connectProbe(started.broker.url);
    await connected.subscribe("edge-signin/#");
  });
  afterEach(async () => {
    // Every cleanup runs, even after one failed: an agent left running would disturb the next test.
    const failures: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, "cleanups after the test failed");
  });
  afterAll(async () => {
    await connected?.close();
    await started?.close();
  });

  const current = (): TestBed => {
    if (!started) throw new Error("useTestBed(): the bed exists only inside the block's tests and hooks");
    return started;
  };
  const currentProbe = (): MqttProbe => {
    if (options.probe === false) throw new Error("useTestBed({ probe: false }) has no probe");
    if (!connected) throw new Error("useTestBed(): the probe exists only inside the block's tests and hooks");
    return connected;
  };
  const afterThisTest = (cleanup: () => unknown) => void cleanups.push(cleanup);
  const startAgent = async (overrides: Record<string, string> = {}): Promise<WatchedAgentProcess> => {
    const env = current().env(overrides);
    const topics = deviceTopics(
      env["EDGE_SIGNIN_TOPIC_PREFIX"] ?? "edge-signin",
      env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
    );
    const probe = await connectProbe(current().broker.url);
    afterThisTest(() => probe.close());
    await probe.subscribe(`${topics.base}/#`);
    return {
      ...startAgentProcess({ afterThisTest }, env),
      probe,
      prompt: async (timeoutMs = PROCESS_WAIT_MS) =>
        (await probe.next(topics.display, (m) => m.payload.length > 0, timeoutMs)).json<DisplayPayload>(),
      event: async <T extends EventType>(type: T, timeoutMs = PROCESS_WAIT_MS) =>
        (await probe.next(topics.event(type), undefined, timeoutMs)).json<EventPayload<T>>(),
      state: async (predicate, timeoutMs = PROCESS_WAIT_MS) =>
        (
          await probe.next(
            topics.state,
            (m) => m.payload.length > 0 && predicate(m.json<StatePayload>()),
            timeoutMs,
          )
        ).json<StatePayload>(),
    };
  };

  return {
    bed: {
      get broker() {
        return current().broker;
      },
      get idp() {
        return current().idp;
      },
      get stateDir() {
        return current().stateDir;
      },
      env: (overrides) => current().env(overrides),
      config: (overrides) => current().config(overrides),
    },
    probe: {
      subscribe: (filter) => currentProbe().subscribe(filter),
      next: (topic, predicate, timeoutMs) => currentProbe().next(topic, predicate, timeoutMs),
      all: (topic) => currentProbe().all(topic),
      everything: () => currentProbe().everything(),
      publish: (topic, payload, opts) => currentProbe().publish(topic, payload, opts),
      close: () => currentProbe().close(),
    },
    newAgent: (config, logger = captureLogger().logger) => {
      const agent = new Agent({ config, logger });
      afterThisTest(() => agent.stop());
      return agent;
    },
    afterThisTest,
    startAgent,
  };
}

/** A logger whose JSON lines are kept, parsed, for assertions (pino's own tests do the same). */
export function captureLogger(): {
  logger: Logger;
  lines: () => Array<Record<string, unknown>>;
  text: () => string;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString("utf8"));
      callback();
    },
  });
  const text = () => chunks.join("");
  return {
    logger: createLogger("trace", sink),
    text,
    lines: () =>
      text()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
