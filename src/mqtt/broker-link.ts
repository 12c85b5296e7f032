import { EventEmitter } from "eventemitter3";
import { connect, type IClientOptions, type IConnackPacket, type MqttClient, type Packet } from "mqtt";
import type { Logger } from "pino";
import { MAX_CONNECT_TIMEOUT_GROWTH, type MqttConfig } from "../config/index.js";
import { brokerNodes, nextNode, nodeAddress, reconnectDelay, type BrokerNode } from "./broker-nodes.js";
import {
  grownConnectTimeout,
  judgeConnectionError,
  judgeRefusal,
  versionAfterSilentClose,
  versionForFreshConnection,
  type MqttRefusedError,
} from "./connection-policy.js";
import { SESSION_TAKEN_OVER, TakeoverDetector, takeoverMessage } from "./quirks/takeover.js";

/** What the broker allows, from its MQTT 5 CONNACK (3.1.1 brokers say nothing: the protocol's own limits). */
export interface ServerLimits {
  /** Largest packet the broker accepts, in bytes; undefined: no limit but the protocol's (256 MiB). */
  readonly maximumPacketSize: number | undefined;
  /** QoS 1 and 2 publishes the broker accepts unacknowledged at once (MQTT 5 default 65,535). */
  readonly receiveMaximum: number;
  readonly maximumQoS: 0 | 1 | 2;
  readonly retainAvailable: boolean;
  /** Topic aliases the broker accepts from us; we send none, so this is only reported. */
  readonly topicAliasMaximum: number;
  /** The keep-alive the broker imposes, in seconds (mqtt.js uses it instead of ours). */
  readonly serverKeepAlive: number | undefined;
  /** The client id the broker gave us instead of ours. */
  readonly assignedClientIdentifier: string | undefined;
}

export interface LinkUp {
  /** The node this connection is to (one of `EDGE_SIGNIN_MQTT_URL`'s list; may carry credentials). */
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  readonly limits: ServerLimits;
}

export interface BrokerLinkEvents {
  /** A connection was accepted (the first and every reconnect). */
  up: [link: LinkUp];
  /**
   * The connection is down or an attempt failed; mqtt.js retries with the backoff unless the link failed.
   * `dropped`: the broker answered our CONNECT and then closed the connection (not a broker that could not be
   * reached, not a version fallback): what a 3.1.1 broker does to a packet larger than it takes.
   */
  down: [dropped: boolean];
  /** The broker refused us for good: the link stopped. */
  fatal: [error: MqttRefusedError];
  /** Another client keeps taking our client id: the link stopped. */
  conflict: [message: string];
}

export interface BrokerLinkOptions {
  readonly config: MqttConfig;
  readonly clientId: string;
  readonly will?: IClientOptions["will"];
  /**
   * Wait before the first reconnect, in ms; with several nodes each gets one attempt at this wait, then it doubles
   * per round of failed attempts up to `maxMs`; back to this once connected.
   */
  readonly reconnect: { readonly initialMs: number; readonly maxMs: number };
  readonly keepaliveSeconds: number;
  readonly log?: Logger;
}

const DEFAULT_RECEIVE_MAXIMUM = 65_535;
/** Socket errors of an attempt that never reached a broker. */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
]);
/** What mqtt.js emits when no CONNACK came within its connect timeout. */
const CONNACK_TIMEOUT = "connack timeout";
/** The attempt with 3.1.1 after a broker refused 5 goes at once: it is not a failure to back off from. */
const DOWNGRADE_DELAY_MS = 50;

/**
 * One connection to a broker, kept up across outages, for the agent's gateway and for every display: MQTT 5 or
 * 3.1.1 as the broker speaks (`auto`), retries after refusals that pass (mqtt.js on its own gives up after any
 * refused CONNACK), stops for good on a refusal that needs a setting changed, and notices another client taking
 * our client id again and again. With several broker nodes (a cluster), each reconnect goes to the next node in
 * turn (round robin from the first, the "home" node); the protocol version and its fallback are judged per node.
 */
export class BrokerLink extends EventEmitter<BrokerLinkEvents> {
  private client: MqttClient | undefined;
  private readonly nodes: BrokerNode[];
  /** The node of the current (or next) attempt. */
  private nodeIndex = 0;
  /** The next attempt retries this node (with the other protocol version) instead of moving on. */
  private stayOnNode = false;
  private failures = 0;
  private stopped = false;
  /** This attempt never reached the broker (refused, no route, DNS): its close says nothing about the broker. */
  private unreachable = false;
  private connackSeen = false;
  /** This attempt ended on our own connect timeout: a slow link, never a refusal of the protocol version. */
  private timedOut = false;
  /** The connect timeout of the next attempt, in ms: the setting, doubled after each attempt that timed out. */
  private connectTimeoutMs: number;
  private readonly takeover = new TakeoverDetector();
  private current: LinkUp | undefined;
  private isUp = false;

  constructor(private readonly options: BrokerLinkOptions) {
    super();
    this.nodes = brokerNodes(options.config.urls, options.config.protocolVersion);
    this.connectTimeoutMs = options.config.connectTimeoutMs;
  }

  private get node(): BrokerNode {
    return this.nodes[this.nodeIndex] as BrokerNode;
  }

  private get version(): 4 | 5 {
    return this.node.version;
  }

  /** The mqtt.js client, for publish and subscribe; undefined before start() and after stop(). */
  get mqtt(): MqttClient | undefined {
    return this.client;
  }

  /** The version and limits of the connection that is up, if one is. */
  get up(): LinkUp | undefined {
    return this.client?.connected ? this.current : undefined;
  }

  /** The protocol version of the current (or next) attempt. */
  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  /**
   * Connects; resolves on the first accepted connection, rejects with MqttRefusedError when the broker refuses us
   * for good before that (later such refusals are `fatal` events). An unreachable broker is waited for.
   */
  start(): Promise<void> {
    const { config, reconnect } = this.options;
    const client = connect({
      ...this.address(),
      clientId: this.options.clientId,
      protocolVersion: this.version,
      clean: true,
      // Subscriptions are ours to renew on every connection (kept-subscriptions.ts): mqtt.js would drop a refused one.
      resubscribe: false,
      keepalive: this.options.keepaliveSeconds,
      reconnectPeriod: reconnect.initialMs,
      // mqtt.js gives up after a refused CONNACK unless told otherwise; which refusals end the link is ours to say.
      reconnectOnConnackError: true,
      connectTimeout: this.connectTimeoutMs,
      // mqtt.js otherwise pre-builds a Buffer for each of the 65,536 two-byte numbers on the first packet: about
      // 6 MiB of heap and several milliseconds before the first code is on the display.
      writeCache: false,
      ...(this.options.will ? { will: this.options.will } : {}),
      // Set for every node (a node's URL may carry its own when the settings give none: see address()).
      ...(config.username !== undefined ? { username: config.username } : {}),
      ...(config.password !== undefined ? { password: config.password } : {}),
      ...(config.ca !== undefined ? { ca: config.ca } : {}),
      ...(config.cert !== undefined ? { cert: config.cert } : {}),
      ...(config.key !== undefined ? { key: config.key } : {}),
    });
    this.client = client;
    client.on("packetreceive", (packet: Packet) => {
      if (packet.cmd === "connack") this.connackSeen = true;
    });
    client.on("connect", (connack) => this.accepted(client, connack));
    client.on("close", () => this.closed(client));
    client.on("reconnect", () => {
      this.unreachable = false;
      this.connackSeen = false;
      this.timedOut = false;
      // mqtt.js builds the next stream from client.options right after this event: point it at the next node.
      if (!this.stayOnNode && this.nodes.length > 1) {
        this.nodeIndex = nextNode(this.nodeIndex, this.nodes.length);
        Object.assign(client.options, this.address());
        client.options.protocolVersion = this.version;
      }
      this.stayOnNode = false;
      // mqtt.js reads reconnectPeriod afresh before every wait: setting it here makes its fixed retry a backoff.
      this.failures += 1;
      client.options.reconnectPeriod = reconnectDelay(this.failures, this.nodes.length, reconnect);
      this.options.log?.debug(
        {
          node: this.nodeIndex,
          nextAttemptInMs: client.options.reconnectPeriod,
          protocolVersion: this.version,
        },
        "reconnecting to broker",
      );
    });
    client.on("disconnect", (packet) => {
      // MQTT 5: the broker says why it ends the connection.
      if (packet.reasonCode === SESSION_TAKEN_OVER)
        this.conflict(
          takeoverMessage(this.clientId(client), "the broker said: session taken over, reason 0x8E"),
        );
      else
        this.options.log?.warn(
          { reasonCode: packet.reasonCode, reason: packet.properties?.reasonString },
          "broker closed the connection",
        );
    });
    return new Promise<void>((resolve, reject) => {
      const onUp = () => {
        this.off("fatal", onFatal);
        resolve();
      };
      const onFatal = (error: MqttRefusedError) => {
        this.off("up", onUp);
        reject(error);
      };
      this.once("up", onUp);
      this.once("fatal", onFatal);
      client.on("error", (error: Error & { code?: unknown }) => this.failed(client, error));
    });
  }

  /** Stops watching and retrying; hands the client back for its owner to end (after a clean `offline`, say). */
  release(): MqttClient | undefined {
    this.stopped = true;
    const client = this.client;
    this.client = undefined;
    return client;
  }

  /**
   * A close that a message of ours explains (the broker dropped us for a message too large for it) is no sign
   * that another client takes our id.
   */
  forgiveLastClose(): void {
    this.takeover.forgive();
  }

  private accepted(client: MqttClient, connack: IConnackPacket): void {
    const props = this.version === 5 ? connack.properties : undefined;
    const limits: ServerLimits = {
      maximumPacketSize: props?.maximumPacketSize,
      receiveMaximum: props?.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM,
      maximumQoS: (props?.maximumQoS ?? 2) as 0 | 1 | 2,
      retainAvailable: props?.retainAvailable ?? true,
      topicAliasMaximum: props?.topicAliasMaximum ?? 0,
      serverKeepAlive: props?.serverKeepAlive,
      assignedClientIdentifier: props?.assignedClientIdentifier,
    };
    // A reconnect must present the id the broker gave us, or it would hand out yet another one.
    if (limits.assignedClientIdentifier) client.options.clientId = limits.assignedClientIdentifier;
    this.node.everConnected = true;
    this.node.accepted.add(this.version);
    this.failures = 0;
    client.options.reconnectPeriod = this.options.reconnect.initialMs;
    this.takeover.connected();
    this.isUp = true;
    this.current = { url: this.node.url, protocolVersion: this.version, limits };
    this.emit("up", this.current);
  }

  private closed(client: MqttClient): void {
    const wasUp = this.isUp;
    this.isUp = false;
    if (this.stopped || client !== this.client) return;
    // The broker answered our CONNECT and closed the connection anyway (a 3.1.1 broker's answer to a packet too large).
    let dropped = this.connackSeen;
    this.options.log?.debug(
      { unreachable: this.unreachable, connackSeen: this.connackSeen, protocolVersion: this.version },
      "broker connection closed",
    );
    if (wasUp) {
      // A fresh connection after one that was up: `auto` tries MQTT 5 again (a broker refusing it says so at once).
      const fresh = versionForFreshConnection(this.options.config.protocolVersion, this.version);
      if (fresh !== this.version) {
        this.options.log?.info({ protocolVersion: fresh }, `reconnecting with MQTT ${label(fresh)} first`);
        this.useVersion(client, fresh);
      }
    } else if (!this.unreachable && !this.connackSeen && !this.timedOut) {
      // Closed by the broker before any CONNACK: RabbitMQ 3.x answers an MQTT 5 CONNECT this way.
      const next = versionAfterSilentClose(
        this.options.config.protocolVersion,
        this.version,
        this.node.accepted,
      );
      if (next !== this.version) {
        this.options.log?.info(
          { protocolVersion: next },
          `broker closed the connection without a CONNACK; trying MQTT ${label(next)}`,
        );
        this.useVersion(client, next);
        this.stayOnNode = true;
        dropped = false;
      }
    }
    if (this.takeover.closed())
      this.conflict(
        takeoverMessage(this.clientId(client), "the broker closed our connection again and again"),
      );
    if (!this.stopped) this.emit("down", dropped);
  }

  private failed(client: MqttClient, error: Error & { code?: unknown }): void {
    if (this.stopped || client !== this.client) return;
    // A numeric code while not connected is a refused CONNACK; once connected, mqtt.js reports packet problems so.
    const refused = typeof error.code === "number" && !client.connected;
    if (typeof error.code === "string" && UNREACHABLE.has(error.code)) this.unreachable = true;
    if (error.message === CONNACK_TIMEOUT && !client.connected) {
      // A slow link (NB-IoT, GPRS, satellite): wait longer next time, rather than give up or change version.
      this.timedOut = true;
      const waited = this.connectTimeoutMs;
      this.connectTimeoutMs = grownConnectTimeout(
        waited,
        this.options.config.connectTimeoutMs,
        MAX_CONNECT_TIMEOUT_GROWTH,
      );
      client.options.connectTimeout = this.connectTimeoutMs;
      this.options.log?.warn(
        {
          waitedSeconds: waited / 1000,
          nextTimeoutSeconds: this.connectTimeoutMs / 1000,
          protocolVersion: this.version,
        },
        "no answer from the broker within the connect timeout (a slow link?); the next attempt waits longer (EDGE_SIGNIN_MQTT_CONNECT_TIMEOUT_SECONDS)",
      );
      return;
    }
    const step = refused
      ? judgeRefusal(error.code as number, this.options.config.protocolVersion, this.version)
      : judgeConnectionError(error);
    if (refused && (error.code === 0x9a || error.code === 0x9b) && client.options.will) {
      // Retain (0x9A) or QoS (0x9B) not supported, for our last will: ask for less and try again.
      client.options.will = { ...client.options.will, retain: false, qos: 0 };
    }
    if (step.kind === "fatal") {
      this.stopped = true;
      client.end(true);
      this.emit("fatal", step.error);
      return;
    }
    if (step.kind === "downgrade") {
      this.options.log?.info("broker refused MQTT 5 (unsupported protocol version); trying MQTT 3.1.1");
      this.useVersion(client, 4);
      this.stayOnNode = true;
      client.options.reconnectPeriod = DOWNGRADE_DELAY_MS;
      return;
    }
    this.options.log?.warn(
      { err: { message: error.message, code: error.code }, protocolVersion: this.version },
      refused ? "broker refused the connection for now; retrying with backoff" : "broker connection error",
    );
  }

  /** mqtt.js's address options for the current node. */
  private address() {
    const { config } = this.options;
    return nodeAddress(
      this.node.url,
      config.username === undefined,
      config.cert !== undefined && config.key !== undefined,
    );
  }

  private useVersion(client: MqttClient, version: 4 | 5): void {
    this.node.version = version;
    // mqtt.js builds the CONNECT packet and the parser from its options on every attempt.
    client.options.protocolVersion = version;
  }

  private conflict(message: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.client?.end(true);
    this.emit("conflict", message);
  }

  private clientId(client: MqttClient): string {
    return client.options.clientId ?? this.options.clientId;
  }
}

function label(version: 4 | 5): string {
  return version === 5 ? "5" : "3.1.1";
}
