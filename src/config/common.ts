import { readBrokerUrls } from "./broker-urls.js";
import type { EnvReader } from "./env.js";
import type { LogLevel } from "./rules.js";
import { ENV_PREFIX } from "./setting.js";
import { SETTING } from "./settings.js";

/** The settings more than one command reads: the broker, the topic prefix, the log level, a web page's listener. */

/** A connect timeout grows (doubling after each attempt that timed out) to at most this many times the setting. */
export const MAX_CONNECT_TIMEOUT_GROWTH = 8;

export interface MqttConfig {
  /**
   * The broker's nodes, tried in this order (the first is the "home" node) and in turn after a node is lost;
   * one URL for a single broker.
   */
  readonly urls: readonly [string, ...string[]];
  readonly clientId: string;
  /** `auto`: MQTT 5, or 3.1.1 when the broker refuses 5; `4` or `5` forces one. */
  readonly protocolVersion: "auto" | 4 | 5;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /**
   * How long one connection attempt waits for the broker's CONNACK (TCP and TLS included), in ms; attempts that
   * time out double it for the next, up to {@link MAX_CONNECT_TIMEOUT_GROWTH} times this.
   */
  readonly connectTimeoutMs: number;
}

/** Where a web page listens and which host names it answers to: the web display's and `fleet --web`'s. */
export interface WebListenConfig {
  readonly host: string;
  readonly port: number;
  readonly allowedHosts: readonly string[];
}

export function readTopicPrefix(read: EnvReader): string {
  return read.get(SETTING.TOPIC_PREFIX);
}

export function readLogLevel(read: EnvReader): LogLevel {
  return read.get(SETTING.LOG_LEVEL);
}

/** The broker settings, shared by the agent and the displays (each with its own default client id). */
export function readMqtt(read: EnvReader, defaultClientId: string): MqttConfig {
  const mqtt: MqttConfig = {
    urls: readBrokerUrls(read),
    clientId: read.get(SETTING.MQTT_CLIENT_ID) ?? defaultClientId,
    protocolVersion: read.get(SETTING.MQTT_PROTOCOL_VERSION),
    username: read.get(SETTING.MQTT_USERNAME),
    password: read.secret(SETTING.MQTT_PASSWORD),
    ca: read.pemFile(SETTING.MQTT_CA_FILE, "certificates"),
    cert: read.pemFile(SETTING.MQTT_CERT_FILE, "certificates"),
    key: read.pemFile(SETTING.MQTT_KEY_FILE, "key"),
    connectTimeoutMs: read.ms(SETTING.MQTT_CONNECT_TIMEOUT_SECONDS),
  };
  if (mqtt.cert !== undefined && mqtt.key === undefined)
    read.problem(`${ENV_PREFIX}MQTT_KEY_FILE: expected a key file to go with ${ENV_PREFIX}MQTT_CERT_FILE`);
  return mqtt;
}

export function readWebListen(read: EnvReader): WebListenConfig {
  return {
    host: read.get(SETTING.DISPLAY_HOST),
    port: read.get(SETTING.DISPLAY_PORT),
    allowedHosts: read.get(SETTING.DISPLAY_ALLOWED_HOSTS).map((h) => h.toLowerCase()),
  };
}
