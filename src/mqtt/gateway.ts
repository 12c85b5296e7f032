import { EventEmitter } from "eventemitter3";
import type { IClientPublishOptions, IPublishPacket, MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { MqttConfig } from "../config/index.js";
import { BrokerLink, type LinkUp } from "./broker-link.js";
import type { MqttRefusedError } from "./connection-policy.js";
import { KeptSubscriptions } from "./quirks/kept-subscriptions.js";
import {
  RETAINED_CHECK_AFTER_MS,
  RETAINED_RECHECK_AFTER_RECONNECT_MS,
  RetainedCheck,
} from "./quirks/retained-check.js";
import type { Availability, DeviceTopics } from "./topics.js";

export { MqttRefusedError } from "./connection-policy.js";
export { invalidTopic, publishPacketSize, redactUrl, topicMatches } from "./topic-rules.js";
import { invalidTopic, publishPacketSize, redactUrl, topicMatches } from "./topic-rules.js";

const STOP_GRACE_MS = 2_000;
/** Reconnect backoff: the first retry after 1 s, doubling up to 30 s, back to 1 s once connected. */
const RECONNECT_INITIAL_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
const KEEPALIVE_SECONDS = 30;
/**
 * A broker that will not take a packet (a 3.1.1 broker's answer to one too large) closes the connection as soon
 * as it reads it. A close later than this after our last QoS 1 publish has another cause: a cluster node lost, or
 * NATS closing the connection when its JetStream store of the message timed out (4 s) during a leader election.
 */
const DROP_AFTER_PUBLISH_MS = 2_000;

/**
 * What keeps the gateway off the broker; the agent reports it and `edge-signin health` shows it. `refused`
 * stops it for good; `client_id_conflict` lasts while another client takes our id (it keeps trying, with
 * backoff) and `client_id_conflict_over` says it ended.
 */
export type BrokerProblem =
  | { readonly kind: "refused"; readonly error: MqttRefusedError }
  | { readonly kind: "client_id_conflict"; readonly message: string }
  | { readonly kind: "client_id_conflict_over" };

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
  /**
   * Delivered with the retain flag: from the broker's retained store (on subscribing, so on every connection),
   * not published while we listened. A retained request is history, not a request.
   */
  readonly retained: boolean;
}

interface Subscription {
  readonly filter: string;
  readonly handler: (message: IncomingMessage) => void;
}

/** A QoS 1 publish waiting for a free slot under the broker's receive maximum. */
interface PendingPublish {
  readonly topic: string;
  readonly payload: string | Buffer;
  readonly options: IClientPublishOptions;
  readonly done: (error?: Error) => void;
}

/**
 * What the gateway tells its owner and the reporters; subscribe with `listen(gateway, {...})`, which returns the
 * unsubscribe.
 */
export interface GatewayEvents {
  /** Every connect, the first included: re-send whatever retained state a new broker lacks. */
  connect: [link: LinkUp];
  /**
   * The connection was lost or an attempt failed; `dropped`: the broker had our CONNECT and then closed the
   * connection right after a QoS 1 publish of ours (rather than being unreachable, or closing it for a reason of its
   * own later, as a cluster does when it loses a node).
   */
  disconnect: [dropped: boolean];
  /**
   * The broker was found to hold an outdated copy of a retained message of ours other than the availability (see
   * quirks/retained-check.ts): the owner re-sends its retained state, as on a connect.
   */
  retained_lost: [];
  /** Once, when the gateway stops connecting for good (refused, or our client id is taken). */
  problem: [problem: BrokerProblem];
}

/**
 * The only code that talks to the broker. It owns the connection (through BrokerLink), the last will and the
 * availability topic, tells its owner about every (re)connect so retained state can be re-sent, and keeps every
 * publish within what the broker said it accepts (MQTT 5 CONNACK: packet size, receive maximum, QoS, retain).
 */
export class MqttGateway extends EventEmitter<GatewayEvents> {
  private link: BrokerLink | undefined;
  private readonly subscriptions: Subscription[] = [];
  private inFlight = 0;
  private readonly waiting: PendingPublish[] = [];
  /** The packet id mqtt.js last sent each acknowledged payload with (it keeps the id across resends). */
  private readonly messageIds = new WeakMap<Buffer, number>();
  private warnedNoRetain = false;
  private everUp = false;
  private kept: KeptSubscriptions | undefined;
  /** True while re-sending what a retained check found lost: those sends count as its correction round. */
  private correcting = false;
  private readonly retainedCheck: RetainedCheck;
  private readonly checkedTopics: ReadonlySet<string>;
  /** When we last wrote a QoS 1 publish to the broker (Date.now()). */
  private lastPublishSentAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly config: MqttConfig,
    private readonly topics: DeviceTopics,
    private readonly log: Logger,
  ) {
    super();
    this.checkedTopics = new Set([topics.availability, topics.state, topics.display]);
    this.retainedCheck = new RetainedCheck({
      client: () => this.link?.mqtt,
      connected: () => this.connected,
      onMismatch: (topics) => this.resendRetained(topics),
      log,
    });
  }

  /**
   * Resolves on the first successful connection; rejects with MqttRefusedError only when the broker refuses us for
   * good before that. A refusal after that, or another client taking our id, is reported as a `problem` event.
   */
  start(): Promise<void> {
    const offline: Availability = "offline";
    const link = new BrokerLink({
      config: this.config,
      clientId: this.config.clientId,
      will: { topic: this.topics.availability, payload: Buffer.from(offline), qos: 1, retain: true },
      reconnect: { initialMs: RECONNECT_INITIAL_MS, maxMs: RECONNECT_MAX_MS },
      keepaliveSeconds: KEEPALIVE_SECONDS,
      log: this.log,
    });
    this.link = link;
    const started = link.start();
    const client = link.mqtt as MqttClient;
    // Subscribed on every connection, and a refused subscription is tried again (kept-subscriptions.ts).
    this.kept = new KeptSubscriptions(client, {
      // Commands are all we subscribe to: on MQTT 5 one published with the retain flag is then known as such at
      // once, not only after the next reconnect hands it back from the retained store.
      retainAsPublished: true,
      onRefused: ({ filter, reasonCode, retryInMs }) =>
        this.log.warn(
          { filter, reasonCode, retryInMs },
          "the broker refused a subscription (reason code 0x" +
            reasonCode.toString(16) +
            "); trying again: commands on it are not received until then",
        ),
    });
    this.kept.add(this.subscriptions.map((s) => s.filter));
    client.on("message", (topic, payload, packet) =>
      this.dispatch(topic, payload, packet.retain, packet.properties),
    );
    client.on("packetsend", (packet) => {
      if (packet.cmd !== "publish") return;
      if (packet.qos === 1) this.lastPublishSentAt = Date.now();
      if (Buffer.isBuffer(packet.payload) && packet.messageId !== undefined)
        this.messageIds.set(packet.payload, packet.messageId);
    });
    link.on("up", (up) => {
      this.log.info(
        { url: redactUrl(up.url), protocolVersion: up.protocolVersion, limits: up.limits },
        `connected to broker with MQTT ${up.protocolVersion === 5 ? "5" : "3.1.1"}`,
      );
      if (!up.limits.retainAvailable && !this.warnedNoRetain) {
        this.warnedNoRetain = true;
        this.log.warn(
          "the broker keeps no retained messages: a display that starts late waits for the next change",
        );
      }
      // Read our retained topics back later: after a reconnect twice, as a lost connection's will may land late.
      if (up.limits.retainAvailable)
        this.retainedCheck.connected(
          this.everUp ? [RETAINED_CHECK_AFTER_MS, RETAINED_RECHECK_AFTER_RECONNECT_MS] : [],
        );
      this.publish(this.topics.availability, "online", { retain: true });
      this.everUp = true;
      this.emit("connect", up);
    });
    // "down" fires on every lost or failed connection, also while reconnecting: health reads it.
    link.on("down", (dropped) => {
      const onPublish = dropped && Date.now() - this.lastPublishSentAt <= DROP_AFTER_PUBLISH_MS;
      this.emit("disconnect", onPublish);
    });
    link.on("fatal", (error) => {
      this.log.error({ setting: error.setting }, error.message);
      this.reportProblem({ kind: "refused", error });
    });
    link.on("conflict", (message) => {
      this.log.warn({ clientId: this.config.clientId }, message);
      this.reportProblem({ kind: "client_id_conflict", message });
    });
    link.on("oversized", ({ topic, bytes }) =>
      this.log.warn({ topic, bytes }, "skipped a message too large to take, unread"),
    );
    link.on("conflictOver", () => {
      this.log.info(
        { clientId: this.config.clientId },
        "the client id is ours again: the other client has gone",
      );
      this.reportProblem({ kind: "client_id_conflict_over" });
    });
    let offlineWarned = false;
    client.on("offline", () => {
      if (!offlineWarned)
        this.log.warn("broker unreachable; reconnecting with backoff, events wait in the outbox");
      offlineWarned = true;
    });
    client.on("connect", () => (offlineWarned = false));
    return started;
  }

  /** Re-sends what a retained check found the broker lost: `online` here, the rest by its owner (`retained_lost`). */
  private resendRetained(topics: readonly string[]): void {
    this.correcting = true;
    try {
      if (topics.includes(this.topics.availability))
        this.publish(this.topics.availability, "online", { retain: true, onlyIfConnected: true });
      if (topics.some((topic) => topic !== this.topics.availability)) this.emit("retained_lost");
    } finally {
      this.correcting = false;
    }
  }

  /** True while a connection to the broker is up. */
  get connected(): boolean {
    return this.link?.up !== undefined;
  }

  /** The MQTT version in use (or being tried): 5 or 4 (3.1.1). */
  get protocolVersion(): 4 | 5 {
    return this.link?.protocolVersion ?? (this.config.protocolVersion === 4 ? 4 : 5);
  }

  /**
   * Publishes with QoS 1 and resolves once the broker acknowledged it (PUBACK). mqtt.js keeps an unacknowledged
   * message across reconnects and resends it, so this settles after the outage. Rejects with
   * MqttPublishRefusedError when the broker refused the message (or it is larger than the broker accepts), with
   * another error when the client ended or `signal` gave the message up.
   */
  publishAcknowledged(topic: string, payload: string, signal?: AbortSignal): Promise<void> {
    const client = this.link?.mqtt;
    if (!client) return Promise.reject(new Error("MqttGateway.publishAcknowledged before start()"));
    // Refused for good (the sender then drops it): resending a topic no broker takes would hold back every later event.
    const invalid = invalidTopic(topic);
    if (invalid) return Promise.reject(new MqttPublishRefusedError(invalid));
    // Our own Buffer: mqtt.js sends (and resends) this very object, so its packet id can be found by it.
    const body = Buffer.from(payload);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (error?: Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", abandon);
        if (!error) resolve();
        else if (typeof (error as Error & { code?: unknown }).code === "number")
          reject(new MqttPublishRefusedError(error.message, { cause: error }));
        else reject(error);
      };
      // mqtt.js would resend the message after every reconnect: take it out of its store as well.
      const abandon = () => {
        const index = this.waiting.findIndex((p) => p.done === done);
        if (index >= 0) this.waiting.splice(index, 1);
        const id = this.messageIds.get(body);
        if (id !== undefined && client.outgoing[id]) client.removeOutgoingMessage(id);
        done(signal?.reason instanceof Error ? signal.reason : new Error("message given up"));
      };
      signal?.addEventListener("abort", abandon, { once: true });
      this.send(client, topic, body, { qos: 1 }, done);
    });
  }

  /** A lost connection that a message of ours explains (too large for the broker): no sign of a client-id conflict. */
  forgiveLastDisconnect(): void {
    this.link?.forgiveLastClose();
  }

  /**
   * Subscribes (QoS 1) to `filter` and hands every matching message to `handler`; a handler that throws is
   * logged, never allowed to break the connection. Returns the unsubscribe.
   */
  subscribe(filter: string, handler: (message: IncomingMessage) => void): () => void {
    const subscription: Subscription = { filter, handler };
    this.subscriptions.push(subscription);
    this.kept?.add([filter]);
    return () => {
      const index = this.subscriptions.indexOf(subscription);
      if (index >= 0) this.subscriptions.splice(index, 1);
      if (!this.subscriptions.some((s) => s.filter === filter)) this.kept?.remove(filter);
    };
  }

  private dispatch(
    topic: string,
    payload: Buffer,
    retained: boolean,
    properties: IPublishPacket["properties"],
  ): void {
    const message: IncomingMessage = {
      topic,
      payload,
      retained,
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

  /** QoS 1 always (unless the broker allows only 0): a prompt or an event that never arrives is worse than two. */
  publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): void {
    const client = this.link?.mqtt;
    if (!client) throw new Error("MqttGateway.publish before start()");
    const invalid = invalidTopic(topic);
    if (invalid) throw new Error(invalid);
    // Only the three topics the shipped ACL lets the agent read back (Home Assistant's are not among them).
    if (options.retain && this.checkedTopics.has(topic))
      this.retainedCheck.expect(topic, Buffer.from(payload), this.correcting);
    if (options.onlyIfConnected && !this.connected) {
      this.log.debug({ topic }, "broker unreachable; not queueing, re-published on reconnect");
      return;
    }
    const publishOptions: IClientPublishOptions = { qos: 1, retain: options.retain ?? false };
    const properties: NonNullable<IClientPublishOptions["properties"]> = {};
    if (options.expirySeconds !== undefined)
      properties.messageExpiryInterval = Math.max(1, Math.ceil(options.expirySeconds));
    if (options.correlationData !== undefined) properties.correlationData = options.correlationData;
    if (Object.keys(properties).length > 0) publishOptions.properties = properties;
    this.send(client, topic, payload, publishOptions, (error) => {
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

  /**
   * Every publish goes through here: fitted to the broker's CONNACK limits (a packet it would drop us for is
   * refused here instead), and held back while as many QoS 1 messages as its receive maximum await their PUBACK.
   */
  private send(
    client: MqttClient,
    topic: string,
    payload: string | Buffer,
    requested: IClientPublishOptions,
    done: (error?: Error) => void,
  ): void {
    const up = this.link?.up;
    const limits = up?.limits;
    const version = this.protocolVersion;
    const options: IClientPublishOptions = {
      ...requested,
      qos: limits && limits.maximumQoS < (requested.qos ?? 0) ? limits.maximumQoS : requested.qos,
      // Without retained messages a display that starts late waits for the next change (warned on connect).
      retain: (requested.retain ?? false) && (limits?.retainAvailable ?? true),
    };
    // MQTT 3.1.1 has no properties (no expiry, no correlation data): mqtt.js would drop them silently anyway.
    if (version !== 5) delete options.properties;
    const size = publishPacketSize(topic, payload, options, version);
    if (limits?.maximumPacketSize !== undefined && size > limits.maximumPacketSize) {
      done(
        Object.assign(
          new Error(
            `message of ${size} bytes is larger than the broker accepts (${limits.maximumPacketSize} bytes)`,
          ),
          { code: 0x95 },
        ),
      );
      return;
    }
    if (options.qos === 0) {
      client.publish(topic, payload, options, (error) => done(error ?? undefined));
      return;
    }
    const pending: PendingPublish = { topic, payload, options, done };
    if (this.inFlight >= (limits?.receiveMaximum ?? Infinity)) this.waiting.push(pending);
    else this.sendNow(client, pending);
  }

  private sendNow(client: MqttClient, pending: PendingPublish): void {
    this.inFlight += 1;
    const callback = (error?: Error) => {
      this.inFlight -= 1;
      pending.done(error ?? undefined);
      const next = this.waiting.shift();
      if (next) this.sendNow(client, next);
    };
    client.publish(pending.topic, pending.payload, pending.options, callback);
  }

  private reportProblem(problem: BrokerProblem): void {
    this.emit("problem", problem);
  }

  /** Announces `offline` (the will covers crashes; this covers a clean stop) and closes the connection. */
  async stop(): Promise<void> {
    this.retainedCheck.stop();
    this.kept?.stop();
    const link = this.link;
    if (!link) return;
    const connected = link.up !== undefined;
    const client = link.release();
    this.link = undefined;
    for (const pending of this.waiting.splice(0)) pending.done(new Error("the gateway stopped"));
    if (!client) return;
    if (!connected) {
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
