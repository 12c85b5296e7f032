/**
 * edge-signin as a library: `createAgent(config)` gives the typed event emitter (eventemitter3) with
 * `start()` / `stop()` and the commands `signIn()` / `signOut()` / `cancel()` / `refresh()` / `status()`.
 * Reporters of your own (`options.reporters`) consume the same event stream as the built-in ones.
 */
import { Agent, type AgentOptions } from "./agent.js";
import type { Config } from "./config/index.js";

export { Agent, type AgentOptions } from "./agent.js";
export {
  loadConfig,
  ConfigError,
  SETTINGS,
  type Config,
  type MqttConfig,
  type RetryConfig,
  type WebhookConfig,
  type HomeAssistantConfig,
} from "./config/index.js";
export { CommandRefusedError, type AgentControl, type AgentStatus } from "./control.js";
/** What `start()` throws when the state directory is taken or the cache key does not open the token cache. */
export { StartupError } from "./errors.js";
export { StateDirLockedError } from "./storage/state-lock.js";
export { CacheKeyError } from "./auth/cache-store.js";
/** What `agent.getAccessToken()` gives, and why it may refuse. */
export { AccessTokenError, type AccessToken, type AccessTokenErrorCode } from "./auth/access-token.js";
export type * from "./events.js";
export { subscribe, type Reporter } from "./reporters/reporter.js";
/** For webhook receivers written in Node: check the `X-Edge-Signin-Signature` header. */
export {
  verifyWebhook,
  signWebhook,
  SIGNATURE_HEADER,
  type VerifyOptions,
} from "./reporters/webhook-signature.js";
export {
  deviceTopics,
  type DeviceTopics,
  type DisplayPayload,
  type StatePayload,
  type EventPayload,
  type EventPayloads,
  type EventType,
} from "./mqtt/topics.js";

/** Builds an agent from a Config (see `loadConfig`); nothing happens until `start()`. */
export function createAgent(config: Config, options: Omit<AgentOptions, "config"> = {}): Agent {
  return new Agent({ ...options, config });
}
