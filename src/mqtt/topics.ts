import type {
  Authenticated,
  CodeExpired,
  SignedOut,
  SignInFailed,
  SignInPrompt,
  StateChange,
} from "../events.js";

/**
 * The topic contract. Every topic the agent publishes to is built here from `{prefix}/{deviceId}`;
 * the README's topic table documents the same names and payloads.
 */
export interface DeviceTopics {
  readonly base: string;
  /** Retained `online` / `offline`; `offline` is also the last will. */
  readonly availability: string;
  /** Retained {@link StatePayload}. */
  readonly state: string;
  /** Retained {@link DisplayPayload} while a code is valid; empty when none is. */
  readonly display: string;
  /** QoS 1, not retained: `{base}/events/{type}`. */
  event(type: EventType): string;
  /** The agent subscribes to this filter, `{base}/request/+`, for commands. */
  readonly requests: string;
  /** `{base}/request/{command}`. */
  request(command: string): string;
  /** Where a command's answer goes when the request names no MQTT 5 response topic. */
  response(command: string): string;
}

export function deviceTopics(prefix: string, deviceId: string): DeviceTopics {
  const base = `${prefix}/${deviceId}`;
  return {
    base,
    availability: `${base}/availability`,
    state: `${base}/state`,
    display: `${base}/display`,
    event: (type) => `${base}/events/${type}`,
    requests: `${base}/request/+`,
    request: (command) => `${base}/request/${command}`,
    response: (command) => `${base}/response/${command}`,
  };
}

export type Availability = "online" | "offline";

/**
 * The retained state: the agent's {@link StateChange}, with the device it is of. `account` only with
 * EDGE_SIGNIN_STATE_ACCOUNT=true: displays read this topic, and it holds no personal data otherwise.
 */
export type StatePayload = StateChange & {
  readonly deviceId: string;
};

/** The retained code: the agent's {@link SignInPrompt} as displays read it. */
export type DisplayPayload = Omit<SignInPrompt, "intervalSeconds" | "expiresIn"> & {
  readonly deviceId: string;
  /** The code's lifetime in seconds from `issuedAt`, as the provider gave it (absent from older agents). */
  readonly expiresIn?: number;
};

/** Fields every event carries; subscribers de-duplicate on `id`. */
export interface EventEnvelope<T extends EventType> {
  readonly id: string;
  readonly type: T;
  readonly deviceId: string;
  readonly at: string;
}

/** Each event's data, as the agent emits it (events.ts): declared there once. */
export interface EventPayloads {
  code_issued: Pick<SignInPrompt, "userCode" | "verificationUri" | "verificationUriComplete" | "expiresAt">;
  authenticated: Authenticated;
  code_expired: CodeExpired;
  sign_in_failed: SignInFailed;
  signed_out: SignedOut;
}

export type EventType = keyof EventPayloads;

/** Every event type, at run time (the outbox checks what it reads back against them). */
export const EVENT_TYPES = [
  "code_issued",
  "authenticated",
  "code_expired",
  "sign_in_failed",
  "signed_out",
] as const satisfies readonly EventType[];

/** True when `type` names an event type. */
export function isEventType(type: string): type is EventType {
  return (EVENT_TYPES as readonly string[]).includes(type);
}

/** True when `topic` is one of this device's event topics, `{base}/events/{type}`. */
export function isEventTopic(topics: DeviceTopics, topic: string): boolean {
  return EVENT_TYPES.some((type) => topics.event(type) === topic);
}
export type EventPayload<T extends EventType> = EventEnvelope<T> & EventPayloads[T];
