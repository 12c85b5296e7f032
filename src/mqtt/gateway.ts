import { connect, type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { MqttConfig } from "../config.js";
import type { Availability, DeviceTopics } from "./topics.js";

/** The broker refused us for good (bad credentials, not authorised): retrying will not help. */
export class MqttRefusedError extends Error {
  override readonly name = "MqttRefusedError";
}

/** CONNACK codes that mean "fix the configuration", in MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135, 138, 140). */
const FATAL_CONNACK = new Set([4, 5, 134, 135, 138, 140]);

const STOP_GRACE_MS = 2_000;

export interface PublishOptions {
  readonly retain?: boolean;
  /** MQTT 5 message expiry, in seconds; a retained prompt must vanish with its code. Ignored on MQTT 3.1.1. */
  readonly expirySeconds?: number;
}

/**
 * The only code that talks to the broker. It owns the connection, the last will and the
 * availability topic, and tells its owner about every (re)connect so retained state can be re-sent.
 */
export class MqttGateway {
  private client: MqttClient | undefined;
  private readonly connectListeners: Array<() => void> = [];
  private readonly disconnectListeners: Array<() => void> = [];

  constructor(
    private readonly config: MqttConfig,
    private readonly topics: DeviceTopics,
    private readonly log: Logger,
  ) {}

  /** Resolves on the first successful connection; rejects only when the broker refuses us for good. */
  start(): Promise<void> {
    const offline: Availability = "offline";
    const options: IClientOptions = {
      clientId: this.config.clientId,
      protocolVersion: this.config.protocolVersion,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 2_000,
      connectTimeout: 10_000,
      will: { topic: this.topics.availability, payload: Buffer.from(offline), qos: 1, retain: true },
      ...(this.config.username !== undefined ? { username: this.config.username } : {}),
      ...(this.config.password !== undefined ? { password: this.config.password } : {}),
      ...(this.config.ca !== undefined ? { ca: this.config.ca } : {}),
      ...(this.config.cert !== undefined ? { cert: this.config.cert } : {}),
      ...(this.config.key !== undefined ? { key: this.config.key } : {}),
    };
    const client = connect(this.config.url, options);
    this.client = client;
    client.on("connect", () => {
      this.log.info({ url: redactUrl(this.config.url) }, "connected to broker");
      this.publish(this.topics.availability, "online", { retain: true });
      for (const listener of this.connectListeners) listener();
    });
    // "close" fires on every lost or failed connection, also while reconnecting: health reads it.
    client.on("close", () => {
      for (const listener of this.disconnectListeners) listener();
    });
    client.on("reconnect", () => this.log.debug("reconnecting to broker"));
    client.on("offline", () => this.log.warn("broker unreachable; messages are queued until it is back"));
    return new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.on("error", (error: Error & { code?: number }) => {
        if (typeof error.code === "number" && FATAL_CONNACK.has(error.code)) {
          client.end(true);
          reject(new MqttRefusedError(`broker refused the connection: ${error.message}`));
          return;
        }
        this.log.warn({ err: { message: error.message, code: error.code } }, "broker connection error");
      });
    });
  }

  /** Called on every connect, the first included: re-send whatever retained state a new broker lacks. */
  onConnect(listener: () => void): void {
    this.connectListeners.push(listener);
  }

  /** Called whenever the connection is lost or an attempt fails. */
  onDisconnect(listener: () => void): void {
    this.disconnectListeners.push(listener);
  }

  /** QoS 1 always: a prompt or an event that never arrives is worse than one that arrives twice. */
  publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): void {
    const client = this.client;
    if (!client) throw new Error("MqttGateway.publish before start()");
    if (/[+#]/.test(topic)) throw new Error(`refusing to publish to a wildcard topic: ${topic}`);
    const publishOptions: IClientPublishOptions = { qos: 1, retain: options.retain ?? false };
    if (options.expirySeconds !== undefined && this.config.protocolVersion === 5) {
      publishOptions.properties = { messageExpiryInterval: Math.max(1, Math.ceil(options.expirySeconds)) };
    }
    client.publish(topic, payload, publishOptions, (error) => {
      if (error) this.log.warn({ topic, err: { message: error.message } }, "publish failed");
    });
  }

  publishJson(topic: string, payload: object, options?: PublishOptions): void {
    this.publish(topic, JSON.stringify(payload), options);
  }

  /** Removes a retained message (a zero-length retained publish). */
  clearRetained(topic: string): void {
    this.publish(topic, Buffer.alloc(0), { retain: true });
  }

  /** Announces `offline` (the will covers crashes; this covers a clean stop) and closes the connection. */
  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    if (!client.connected) {
      await client.endAsync(true);
      return;
    }
    const offline: Availability = "offline";
    const flushed = client
      .publishAsync(this.topics.availability, offline, { qos: 1, retain: true })
      .then(() => client.endAsync());
    // A broker that stops answering must not hold up shutdown: docker stop waits only 10 s.
    const deadline = new Promise<"late">((resolve) => setTimeout(resolve, STOP_GRACE_MS, "late").unref());
    if ((await Promise.race([flushed.catch(() => "late" as const), deadline])) === "late") {
      await client.endAsync(true);
    }
  }
}

/** Broker URLs may carry credentials (`mqtt://user:pass@host`); logs must not. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    parsed.username = parsed.username ? "***" : "";
    parsed.password = parsed.password ? "***" : "";
  }
  return parsed.href;
}
