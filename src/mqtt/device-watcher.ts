import { EventEmitter } from "eventemitter3";
import * as z from "zod/mini";
import "../util/zod-messages.js";
import type { MqttConfig } from "../config/index.js";
import { AGENT_STATES } from "../events.js";
import type { SubscriptionRefusal } from "./quirks/kept-subscriptions.js";
import { openWatchLink, type WatchLink } from "./watch-link.js";
import type { Availability, DeviceTopics, DisplayPayload, StatePayload } from "./topics.js";

const Display = z.looseObject({
  deviceId: z.string(),
  userCode: z.string().check(z.minLength(1)),
  verificationUri: z.string().check(z.minLength(1)),
  verificationUriComplete: z.optional(z.string()),
  message: z.string(),
  issuedAt: z.string(),
  expiresAt: z.string(),
  expiresIn: z.optional(z.number().check(z.positive())),
});
/** The retained `{base}/state` payload as the topic contract says (README: Topics); extra fields pass. */
export const State = z.looseObject({ state: z.enum(AGENT_STATES), since: z.string(), deviceId: z.string() });
const Event = z.looseObject({ id: z.string(), type: z.string(), deviceId: z.string(), at: z.string() });

export type WatchedEvent = z.infer<typeof Event> & Record<string, unknown>;

export interface DeviceWatcherEvents {
  /**
   * The prompt to show, or `null` when the display was cleared (or the code expired). `secondsLeft`: what is left
   * of the code's life as the broker reports it (MQTT 5 message expiry of the retained message), or the
   * payload's `expiresIn` for a code received as it was published; undefined when neither says (see
   * countdownFromReceipt in display/device-view.ts).
   */
  display: [prompt: DisplayPayload | null, secondsLeft?: number];
  state: [state: StatePayload];
  availability: [availability: Availability];
  event: [event: WatchedEvent];
  /** A payload that does not follow the topic contract; shown nowhere, reported here. */
  invalid: [topic: string, problem: string];
  /** The watcher's own connection came up (with the MQTT version in use) or went down. */
  connection: [connected: boolean, protocolVersion?: 4 | 5];
  /** The broker refused the watcher for good after it had connected (credentials changed, banned): it stopped. */
  refused: [error: Error];
  /** The broker refused a subscription (its ACL, or a cluster electing a leader); tried again with backoff. */
  subscriptionRefused: [refusal: SubscriptionRefusal];
}

/**
 * A read-only MQTT client for one device's topics: what every display and the demo build on.
 * Payloads are validated, so a malformed message is reported, never shown and never a crash.
 */
export class DeviceWatcher extends EventEmitter<DeviceWatcherEvents> {
  private link: WatchLink | undefined;

  constructor(
    private readonly config: MqttConfig,
    private readonly topics: DeviceTopics,
  ) {
    super();
  }

  /**
   * Connects (MQTT 5, or 3.1.1 when the broker refuses 5, as `protocolVersion` says) and subscribes. An unreachable
   * broker is waited for: a display that starts before its broker simply shows "reconnecting". Rejects only when
   * the broker refuses us for good (MqttRefusedError, one line naming the setting); later such refusals are
   * `refused` events.
   */
  async start(): Promise<void> {
    this.link = openWatchLink(
      this.config,
      `${this.config.clientId}-watch-${Math.random().toString(16).slice(2, 8)}`,
      {
        message: (topic, payload, packet) => this.receive(topic, payload, packet),
        connection: (connected, protocolVersion) => this.emit("connection", connected, protocolVersion),
        refused: (error) => this.emit("refused", error),
        subscriptionRefused: (refusal) => this.emit("subscriptionRefused", refusal),
      },
    );
    await this.link.connected;
    const { base } = this.topics;
    await this.link.keep([
      this.topics.availability,
      this.topics.state,
      this.topics.display,
      `${base}/events/+`,
    ]);
  }

  async stop(): Promise<void> {
    await this.link?.close();
    this.link = undefined;
  }

  private receive(
    topic: string,
    payload: Buffer,
    packet: { retain?: boolean; properties?: { messageExpiryInterval?: number } } = {},
  ): void {
    const text = payload.toString("utf8");
    if (topic === this.topics.availability) {
      if (text === "online" || text === "offline") this.emit("availability", text);
      else this.emit("invalid", topic, "expected online or offline");
      return;
    }
    if (topic === this.topics.display && payload.length === 0) {
      this.emit("display", null);
      return;
    }
    if (packet.retain && topic !== this.topics.display && topic !== this.topics.state) {
      // An empty retained message is someone clearing such a copy: nothing to say.
      if (payload.length === 0) return;
      // Events are never retained by the agent: one from the retained store is someone's old copy, not news (it
      // would come again with every reconnect, and a display would count down to a code long gone).
      this.emit("invalid", topic, "a retained event is history, not an event; ignored");
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.emit("invalid", topic, "not JSON");
      return;
    }
    const schema = topic === this.topics.display ? Display : topic === this.topics.state ? State : Event;
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.emit("invalid", topic, `${issue?.path.join(".") || "payload"}: ${issue?.message ?? "invalid"}`);
      return;
    }
    if (topic === this.topics.display) {
      const prompt = parsed.data as DisplayPayload;
      // A retained copy may be old; only MQTT 5's expiry says how old. A live one is as old as its delivery.
      const secondsLeft =
        packet.properties?.messageExpiryInterval ?? (packet.retain ? undefined : prompt.expiresIn);
      this.emit("display", prompt, secondsLeft);
    } else if (topic === this.topics.state) this.emit("state", parsed.data as StatePayload);
    else this.emit("event", parsed.data as WatchedEvent);
  }
}
