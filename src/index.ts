/**
 * edge-signin as a library: `createAgent(config)` gives the typed event emitter with `start()` / `stop()`.
 */
import { Agent, type AgentOptions } from "./agent.js";
import type { Config } from "./config.js";

export { Agent, type AgentOptions } from "./agent.js";
export {
  loadConfig,
  ConfigError,
  SETTINGS,
  type Config,
  type MqttConfig,
  type RetryConfig,
} from "./config.js";
export type * from "./events.js";
export type { Reporter } from "./reporters/reporter.js";
export {
  deviceTopics,
  type DeviceTopics,
  type DisplayPayload,
  type StatePayload,
  type EventPayload,
} from "./mqtt/topics.js";

export function createAgent(config: Config, options: Omit<AgentOptions, "config"> = {}): Agent {
  return new Agent({ ...options, config });
}
