/**
 * The configuration: every setting declared once (settings.ts), read from the environment (env.ts) by each
 * command's loader (agent-config.ts, display-config.ts, fleet-config.ts). Importers use this module only.
 */
export { ENV_PREFIX, type Setting, type SettingDoc } from "./setting.js";
export { SETTING, SETTINGS } from "./settings.js";
export { ConfigError, unknownSettings, unknownSettingsWarning } from "./env.js";
export {
  DEVICE_FLOW_DIALECTS,
  LOG_LEVELS,
  sanitiseHostname,
  type DeviceFlowDialect,
  type LogLevel,
} from "./rules.js";
export { MAX_CONNECT_TIMEOUT_GROWTH, type MqttConfig, type WebListenConfig } from "./common.js";
export {
  loadConfig,
  type Config,
  type HomeAssistantConfig,
  type ProxyConfig,
  type RetryConfig,
  type TokenServiceConfig,
  type WebhookConfig,
} from "./agent-config.js";
export { DISPLAY_DEFAULTS, loadDisplayConfig, type DisplayConfig } from "./display-config.js";
export { loadFleetConfig, type FleetConfig } from "./fleet-config.js";
export { contrastRatio } from "./contrast.js";
