import { EventEmitter } from "eventemitter3";
import * as z from "zod/mini";
import "../util/zod-messages.js";
import type { MqttConfig } from "../config/index.js";
import { AGENT_STATES } from "../events.js";
import type { SubscriptionRefusal } from "./quirks/kept-subscriptions.js";
import { openWatchLink, type WatchLink } from "./watch-link.js";
import { MAX_INCOMING_PACKET_BYTES } from "./broker-link.js";
import {
  MAX_MESSAGE_BYTES,
  type Availability,
  type DeviceTopics,
  type DisplayPayload,
  type StatePayload,
} from "./topics.js";

/**
 * What a display takes from a device's topics. Every field it uses has a real limit: strings a length, times a
 * date in range (an ISO 8601 time), durations a span a code can live. The screen cuts further (util/bounded.ts).
 */
const text = (max: number) => z.string().check(z.maxLength(max));
/** An ISO 8601 time as agents write it (years 0000-9999, so always a valid Date). */
const time = z.iso.datetime({ offset: true });
/** Longest URL taken: far past a QR code's 2,331 bytes (a longer one is shown as text to type), far below memory. */
const MAX_URI_CHARS = 8192;
/** Longest sentence taken (a provider's prompt, an error's message); the screen shows the first 1,024 characters. */
const MAX_SENTENCE_CHARS = 16_384;
/** Longest sign-in code life taken: 30 days (RFC 8628 codes live minutes; setTimeout holds 24.8 days). */
export const MAX_CODE_LIFETIME_SECONDS = 30 * 24 * 3600;
const Display = z.looseObject({
  deviceId: text(128),
  userCode: text(64).check(z.minLength(1)),
  verificationUri: text(MAX_URI_CHARS).check(z.minLength(1)),
  verificationUriComplete: z.optional(text(MAX_URI_CHARS)),
  message: text(MAX_SENTENCE_CHARS),
  issuedAt: time,
  expiresAt: time,
  expiresIn: z.optional(z.number().check(z.positive(), z.lte(MAX_CODE_LIFETIME_SECONDS))),
});
const Account = z.looseObject({ name: z.optional(text(256)), username: z.optional(text(256)) });
/** The retained `{base}/state` payload as the topic contract says (README: Topics); extra fields pass. */
export const State = z.looseObject({
  state: z.enum(AGENT_STATES),
  since: text(64),
  deviceId: text(128),
  account: z.optional(Account),
  expiresAt: z.optional(text(64)),
  reason: z.optional(text(256)),
  message: z.optional(text(MAX_SENTENCE_CHARS)),
  retryAt: z.optional(text(64)),
  nextCodeAt: z.optional(text(64)),
});
const Event = z.looseObject({
  id: text(256),
  type: text(256),
  deviceId: text(128),
  at: text(256),
  account: z.optional(Account),
  reason: z.optional(text(256)),
  retryAt: z.optional(text(64)),
  nextCodeAt: z.optional(text(64)),
});

/**
 * Largest payload taken per topic, checked before it is decoded or parsed: a prompt or a state is a few hundred
 * bytes, an `authenticated` event with the ID token a few KB; anything larger is dropped with one line. (The
 * broker is asked not to send more than MAX_INCOMING_PACKET_BYTES at all: broker-link.ts.)
 */
export const MAX_STATE_BYTES = 64 * 1024;

/** Deepest nesting taken: claims are a few levels deep; JSON.stringify of a much deeper value overflows the stack. */
export const MAX_DEPTH = 32;

/** Whether `value` nests no deeper than `max` levels (checked without recursion, so any depth is safe to ask). */
export function nestsWithin(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (typeof item !== "object" || item === null) continue;
    if (depth >= max) return false;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return true;
}

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
  /** Another client takes our client id or uses our broker user: said once; the watcher keeps trying. */
  conflict: [message: string];
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
    const limit =
      topic === this.topics.display || topic === this.topics.state ? MAX_STATE_BYTES : MAX_MESSAGE_BYTES;
    if (payload.length > limit) {
      this.emit("invalid", topic, `${payload.length} bytes, more than the ${limit} a message there may have`);
      return;
    }
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
    if (!nestsWithin(json, MAX_DEPTH)) {
      this.emit("invalid", topic, `nested deeper than ${MAX_DEPTH} levels`);
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
