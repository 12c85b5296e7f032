import {
  connect,
  type IClientOptions,
  type IClientPublishOptions,
  type IPublishPacket,
  type MqttClient,
} from "mqtt";
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
/** Reconnect backoff: the first retry after 1 s, doubling up to 30 s, back to 1 s once connected. */
const RECONNECT_INITIAL_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;

/** The broker answered a publish with an error reason code (not authorised, quota, ...): resending is futile. */
export class MqttPublishRefusedError extends Error {
  override readonly name = "MqttPublishRefusedError";
}

export interface PublishOptions {
  readonly retain?: boolean;
  /** MQTT 5 message expiry, in seconds; a retained prompt must vanish with its code. Ignored on MQTT 3.1.1. */
  readonly expirySeconds?: number;
  /** MQTT 5 correlation data, echoed from a request to its response. Ignored on MQTT 3.1.1. */
  readonly correlationData?: Buffer;
  /**
   * Drop the message instead of queueing it while the broker is unreachable: for retained state that its
   * owner re-publishes on every connect, so an outage does not pile up stale copies (a prompt with an
   * expiry that is no longer true) in memory.
   */
  readonly onlyIfConnected?: boolean;
}

/** A message on a subscribed topic, with the MQTT 5 request/response properties when it had them. */
export interface IncomingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly responseTopic?: string;
  readonly correlationData?: Buffer;
}

interface Subscription {
  readonly filter: string;
  readonly handler: (message: IncomingMessage) => void;
}

/**
 * The only code that talks to the broker. It owns the connection, the last will and the
 * availability topic, and tells its owner about every (re)connect so retained state can be re-sent.
 */
export class MqttGateway {
  private client: MqttClient | undefined;
  private readonly connectListeners: Array<() => void> = [];
  private readonly subscriptions: Subscription[] = [];
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
      reconnectPeriod: RECONNECT_INITIAL_MS,
      connectTimeout: 10_000,
      // mqtt.js otherwise pre-builds a Buffer for each of the 65,536 two-byte numbers on the first packet: about
      // 6 MiB of heap and several milliseconds before the first code is on the display, for a client that sends
      // a handful of packets a minute.
      writeCache: false,
      will: { topic: this.topics.availability, payload: Buffer.from(offline), qos: 1, retain: true },
      ...(this.config.username !== undefined ? { username: this.config.username } : {}),
      ...(this.config.password !== undefined ? { password: this.config.password } : {}),
      ...(this.config.ca !== undefined ? { ca: this.config.ca } : {}),
      ...(this.config.cert !== undefined ? { cert: this.config.cert } : {}),
      ...(this.config.key !== undefined ? { key: this.config.key } : {}),
    };
    const client = connect(this.config.url, options);
    this.client = client;
    // Sent once connected; with a clean session mqtt.js subscribes again after every reconnect (`resubscribe`).
    for (const subscription of this.subscriptions) this.subscribeOn(client, subscription.filter);
    client.on("message", (topic, payload, packet) => this.dispatch(topic, payload, packet.properties));
    client.on("connect", () => {
      this.log.info({ url: redactUrl(this.config.url) }, "connected to broker");
      client.options.reconnectPeriod = RECONNECT_INITIAL_MS;
      this.publish(this.topics.availability, "online", { retain: true });
      for (const listener of this.connectListeners) listener();
    });
    // "close" fires on every lost or failed connection, also while reconnecting: health reads it.
    client.on("close", () => {
      for (const listener of this.disconnectListeners) listener();
    });
    client.on("reconnect", () => {
      // mqtt.js reads reconnectPeriod afresh before every wait, so doubling it here makes its fixed retry a backoff.
      const next = Math.min((client.options.reconnectPeriod ?? RECONNECT_INITIAL_MS) * 2, RECONNECT_MAX_MS);
      client.options.reconnectPeriod = next;
      this.log.debug({ nextAttemptInMs: next }, "reconnecting to broker");
    });
    client.on("offline", () =>
      this.log.warn("broker unreachable; reconnecting with backoff, events wait in the outbox"),
    );
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

  /** True while a connection to the broker is up. */
  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /**
   * Publishes with QoS 1 and resolves once the broker acknowledged it (PUBACK). mqtt.js keeps an unacknowledged
   * message across reconnects and resends it, so this settles after the outage. Rejects with
   * MqttPublishRefusedError when the broker refused the message, with another error when the client ended.
   */
  publishAcknowledged(topic: string, payload: string): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error("MqttGateway.publishAcknowledged before start()"));
    // Refused for good (the sender then drops it): resending a topic no broker takes would hold back every later event.
    const invalid = invalidTopic(topic);
    if (invalid) return Promise.reject(new MqttPublishRefusedError(invalid));
    return new Promise<void>((resolve, reject) => {
      client.publish(topic, payload, { qos: 1 }, (error) => {
        if (!error) resolve();
        else if (typeof (error as Error & { code?: unknown }).code === "number")
          reject(new MqttPublishRefusedError(error.message, { cause: error }));
        else reject(error);
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

  /**
   * Subscribes (QoS 1) to `filter` and hands every matching message to `handler`; a handler that throws is
   * logged, never allowed to break the connection. Returns the unsubscribe.
   */
  subscribe(filter: string, handler: (message: IncomingMessage) => void): () => void {
    const subscription: Subscription = { filter, handler };
    this.subscriptions.push(subscription);
    if (this.client) this.subscribeOn(this.client, filter);
    return () => {
      const index = this.subscriptions.indexOf(subscription);
      if (index >= 0) this.subscriptions.splice(index, 1);
      if (this.client && !this.subscriptions.some((s) => s.filter === filter))
        this.client.unsubscribe(filter, () => undefined);
    };
  }

  private subscribeOn(client: MqttClient, filter: string): void {
    client.subscribe(filter, { qos: 1 }, (error, granted) => {
      const refused = granted?.find((g) => g.qos >= 0x80);
      if (error || refused)
        this.log.warn(
          { filter, err: error ? { message: error.message } : { reasonCode: refused?.qos } },
          "subscription refused",
        );
    });
  }

  private dispatch(topic: string, payload: Buffer, properties: IPublishPacket["properties"]): void {
    const message: IncomingMessage = {
      topic,
      payload,
      ...(properties?.responseTopic !== undefined ? { responseTopic: properties.responseTopic } : {}),
      ...(properties?.correlationData !== undefined ? { correlationData: properties.correlationData } : {}),
    };
    for (const { filter, handler } of this.subscriptions) {
      if (!topicMatches(filter, topic)) continue;
      try {
        handler(message);
      } catch (error) {
        this.log.error({ err: error, topic }, "message handler failed");
      }
    }
  }

  /** QoS 1 always: a prompt or an event that never arrives is worse than one that arrives twice. */
  publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): void {
    const client = this.client;
    if (!client) throw new Error("MqttGateway.publish before start()");
    const invalid = invalidTopic(topic);
    if (invalid) throw new Error(invalid);
    if (options.onlyIfConnected && !client.connected) {
      this.log.debug({ topic }, "broker unreachable; not queueing, re-published on reconnect");
      return;
    }
    const publishOptions: IClientPublishOptions = { qos: 1, retain: options.retain ?? false };
    if (options.expirySeconds !== undefined && this.config.protocolVersion === 5) {
      publishOptions.properties = { messageExpiryInterval: Math.max(1, Math.ceil(options.expirySeconds)) };
    }
    if (options.correlationData !== undefined && this.config.protocolVersion === 5) {
      publishOptions.properties = { ...publishOptions.properties, correlationData: options.correlationData };
    }
    client.publish(topic, payload, publishOptions, (error) => {
      if (error) this.log.warn({ topic, err: { message: error.message } }, "publish failed");
    });
  }

  publishJson(topic: string, payload: object, options?: PublishOptions): void {
    this.publish(topic, JSON.stringify(payload), options);
  }

  /** Removes a retained message (a zero-length retained publish). */
  clearRetained(topic: string, options: PublishOptions = {}): void {
    this.publish(topic, Buffer.alloc(0), { ...options, retain: true });
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

/**
 * Why `topic` cannot be published to, or undefined when it can: a wildcard (MQTT 5 3.3.2.1), a NUL (1.5.4: the
 * broker drops the connection, and mqtt.js would resend it after every reconnect), another control character,
 * or more than 65,535 bytes.
 */
export function invalidTopic(topic: string): string | undefined {
  if (topic.length === 0) return "refusing to publish to an empty topic";
  if (/[+#]/.test(topic)) return `refusing to publish to a wildcard topic: ${JSON.stringify(topic)}`;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(topic))
    return `refusing to publish to a topic with a control character: ${JSON.stringify(topic)}`;
  if (Buffer.byteLength(topic) > 65_535) return "refusing to publish to a topic longer than 65,535 bytes";
  return undefined;
}

/** MQTT topic filter matching: `+` is one level, a trailing `#` any number of levels (also none). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
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
