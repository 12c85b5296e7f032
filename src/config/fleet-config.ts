import { hostname } from "node:os";
import {
  readLogLevel,
  readMqtt,
  readTopicPrefix,
  readWebListen,
  type MqttConfig,
  type WebListenConfig,
} from "./common.js";
import { EnvReader, type Env } from "./env.js";
import { sanitiseHostname, type LogLevel } from "./rules.js";

/** The `fleet` command's settings: the broker (as a read-only user, `fleet` in docker/mosquitto/acl) and the topics. */
export interface FleetConfig {
  readonly topicPrefix: string;
  readonly mqtt: MqttConfig;
  readonly logLevel: LogLevel;
  /** `fleet --web`: where its page listens, and the host names it answers to (the web display's settings). */
  readonly web: WebListenConfig;
}

/**
 * Reads the `fleet` command's settings: the agent's MQTT, topic and log settings, and for `--web` the web
 * display's DISPLAY_HOST, DISPLAY_PORT and DISPLAY_ALLOWED_HOSTS.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadFleetConfig(env: Env = process.env): FleetConfig {
  const read = new EnvReader(env);
  return read.finish<FleetConfig>({
    topicPrefix: readTopicPrefix(read),
    mqtt: readMqtt(read, `edge-signin-fleet-${sanitiseHostname(hostname())}`),
    logLevel: readLogLevel(read),
    web: readWebListen(read),
  });
}
