import { join } from "node:path";
import type { Logger } from "pino";
import { decodeSealingKey } from "../crypto/seal.js";
import type { Config } from "../config/index.js";
import type { MqttGateway } from "../mqtt/gateway.js";
import { Outbox } from "../storage/outbox.js";
import { isEventTopic, type DeviceTopics } from "../mqtt/topics.js";
import { packageVersion } from "../util/version.js";
import { HealthReporter } from "./health-reporter.js";
import { discoveryEntries, HomeAssistantReporter } from "./home-assistant.js";
import { LogReporter } from "./log-reporter.js";
import { MqttReporter } from "./mqtt-reporter.js";
import type { Reporter } from "./reporter.js";
import { WebhookReporter } from "./webhook-reporter.js";

/** What the agent's composition hands every reporter factory. */
export interface ReporterDeps {
  /** The agent's logger; each reporter takes a child with its own `module`. */
  readonly log: Logger;
  /** The one MQTT connection; only reporters publish through it. */
  readonly gateway: MqttGateway;
  readonly topics: DeviceTopics;
}

/** A built-in reporter: returns undefined when the configuration leaves it off. */
type ReporterFactory = (config: Config, deps: ReporterDeps) => Reporter | undefined;

/**
 * The built-in consumers of the event stream, in start order (stopped in reverse). Adding a reporter means a
 * line here and a setting in config.ts; the agent's flow code never learns about it.
 */
const FACTORIES: readonly ReporterFactory[] = [
  (_config, { log }) => new LogReporter(log.child({ module: "events" })),
  // Before the MQTT reporter, which connects: health must hear the first `broker` event.
  (config, { log }) =>
    new HealthReporter(config.stateDir, config.healthIntervalMs, log.child({ module: "health" })),
  // Before the MQTT reporter too: its discovery configs go out on the gateway's first connect.
  (config, { log, gateway, topics }) =>
    new HomeAssistantReporter(
      gateway,
      discoveryEntries({
        deviceId: config.deviceId,
        topics,
        prefix: config.homeAssistant.discoveryPrefix,
        version: packageVersion(),
        stateAccount: config.stateAccount,
      }),
      config.homeAssistant,
      log.child({ module: "home-assistant" }),
      join(config.stateDir, "home-assistant-discovery.json"),
      config.deviceId,
      topics,
    ),
  (config, { log, gateway, topics }) =>
    new MqttReporter(
      gateway,
      topics,
      config.deviceId,
      log.child({ module: "mqtt" }),
      new Outbox(
        join(config.stateDir, "outbox"),
        // Sealed with the token cache's key when there is one: events hold claims, maybe the ID token.
        {
          maxEvents: config.outboxMaxEvents,
          accepts: (topic) => isEventTopic(topics, topic),
          key: config.cacheKey === undefined ? undefined : decodeSealingKey(config.cacheKey),
        },
        log.child({ module: "outbox" }),
      ),
      config.stateAccount,
    ),
  (config, { log }) =>
    config.webhook &&
    new WebhookReporter(
      config.webhook,
      config.deviceId,
      config.stateDir,
      config.retry,
      log.child({ module: "webhook" }),
      config.cacheKey === undefined ? undefined : decodeSealingKey(config.cacheKey),
    ),
];

/** The reporters the configuration switches on. */
export function createReporters(config: Config, deps: ReporterDeps): Reporter[] {
  return FACTORIES.map((factory) => factory(config, deps)).filter(
    (reporter): reporter is Reporter => reporter !== undefined,
  );
}

export type { Reporter } from "./reporter.js";
export { subscribe } from "./reporter.js";
export {
  verifyWebhook,
  signWebhook,
  webhookHeaders,
  ID_HEADER,
  TIMESTAMP_HEADER,
  SIGNATURE_HEADER,
} from "./webhook-signature.js";
