import { EventEmitter } from "eventemitter3";
import type { MqttConfig } from "../config/index.js";
import type { SubscriptionRefusal } from "./quirks/kept-subscriptions.js";
import { openWatchLink, type WatchLink } from "./watch-link.js";
import { MAX_INCOMING_PACKET_BYTES } from "./broker-link.js";
import { MAX_DEPTH, MAX_STATE_BYTES, nestsWithin, State } from "./device-watcher.js";
import type { Availability, StatePayload } from "./topics.js";

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
/** An ISO 8601 time as the agents write it: shown on a terminal, so nothing else (no control characters). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export interface FleetWatcherEvents {
  /** A device's retained availability; `null`: removed (a zero-length retained message). */
  availability: [deviceId: string, availability: Availability | null];
  /** A device's retained state; `null`: removed. */
  state: [deviceId: string, state: StatePayload | null];
  /** A message that does not follow the topic contract: shown nowhere, reported here. */
  invalid: [topic: string, problem: string];
  connection: [connected: boolean];
  /** The broker refused the watcher for good after it had connected: it stopped. */
  refused: [error: Error];
  /** The broker refused a subscription (its ACL, or a cluster electing a leader); tried again with backoff. */
  subscriptionRefused: [refusal: SubscriptionRefusal];
  /** Another client takes our client id or uses our broker user: said once; the watcher keeps trying. */
  conflict: [message: string];
}

/**
 * A read-only MQTT client for every device's `{prefix}/+/availability` and `{prefix}/+/state`: what the fleet
 * view builds on. It reads nothing else (no prompt, no event: `authenticated` carries the person's claims), which
 * is all the broker's `fleet` user may read. Payloads are validated, so a malformed one is reported, never a crash.
 */
export class FleetWatcher extends EventEmitter<FleetWatcherEvents> {
  private link: WatchLink | undefined;

  constructor(
    private readonly config: MqttConfig,
    private readonly prefix: string,
  ) {
    super();
  }

  /**
   * Connects (MQTT 5, or 3.1.1 as the broker speaks) and subscribes; resolves once the subscription is granted,
   * when the broker starts sending the retained messages. Rejects only when the broker refuses us for good.
   */
  async start(): Promise<void> {
    this.link = openWatchLink(
      this.config,
      `${this.config.clientId}-${Math.random().toString(16).slice(2, 8)}`,
      {
        message: (topic, payload) => this.receive(topic, payload),
        connection: (connected) => this.emit("connection", connected),
        refused: (error) => this.emit("refused", error),
        subscriptionRefused: (refusal) => this.emit("subscriptionRefused", refusal),
        conflict: (message) => this.emit("conflict", message),
        oversized: (topic, bytes) =>
          this.emit(
            "invalid",
            topic,
            `${bytes} bytes, more than the ${MAX_INCOMING_PACKET_BYTES} a message may have`,
          ),
      },
    );
    await this.link.connected;
    await this.link.keep([`${this.prefix}/+/availability`, `${this.prefix}/+/state`]);
  }

  async stop(): Promise<void> {
    await this.link?.close();
    this.link = undefined;
  }

  private receive(topic: string, payload: Buffer): void {
    const [deviceId, leaf] = topic.slice(this.prefix.length + 1).split("/");
    if (!deviceId || !DEVICE_ID.test(deviceId)) {
      this.emit("invalid", topic, "not a device id");
      return;
    }
    // Checked before anything is decoded: a retained megabyte on one device's topic must not cost the view more.
    if (payload.length > MAX_STATE_BYTES) {
      this.emit(
        "invalid",
        topic,
        `${payload.length} bytes, more than the ${MAX_STATE_BYTES} a message there may have`,
      );
      return;
    }
    const text = payload.toString("utf8");
    if (leaf === "availability") {
      if (payload.length === 0) this.emit("availability", deviceId, null);
      else if (text === "online" || text === "offline") this.emit("availability", deviceId, text);
      else this.emit("invalid", topic, "expected online or offline");
      return;
    }
    if (payload.length === 0) {
      this.emit("state", deviceId, null);
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.emit("invalid", topic, "not JSON");
      return;
    }
    if (!nestsWithin(json, MAX_DEPTH)) {
      this.emit("invalid", topic, `nested deeper than ${MAX_DEPTH} levels`);
      return;
    }
    const parsed = State.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.emit("invalid", topic, `${issue?.path.join(".") || "payload"}: ${issue?.message ?? "invalid"}`);
      return;
    }
    if (!ISO_TIME.test(parsed.data.since)) {
      this.emit("invalid", topic, "since: expected an ISO 8601 time");
      return;
    }
    this.emit("state", deviceId, parsed.data as StatePayload);
  }
}
