import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type Config, loadConfig } from "../../src/config.js";
import {
  startDevIdentityProvider,
  type DevIdentityProvider,
  type DevIdentityProviderOptions,
} from "../../src/dev/identity-provider.js";
import { createLogger } from "../../src/logger.js";
import type { Logger } from "pino";
import { startTestBroker, type TestBroker } from "./broker.js";

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
