import type {
  AccountSummary,
  AgentState,
  Claims,
  FailureReason,
  SignedOutReason,
  SignInMethod,
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

/**
 * The largest message any edge-signin client takes from the broker (and the most the shipped Mosquitto passes:
 * docker/mosquitto/mosquitto.conf): an `authenticated` event with every claim and the ID token is a few KB; the
 * agent keeps no event larger on disk either (storage/outbox.ts, MAX_ENTRY_BYTES).
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;

export type Availability = "online" | "offline";

export interface StatePayload {
  readonly state: AgentState;
  readonly since: string;
  readonly deviceId: string;
  /** Only with EDGE_SIGNIN_STATE_ACCOUNT=true: displays read this topic, and it holds no personal data otherwise. */
  readonly account?: AccountSummary;
  readonly expiresAt?: string;
  readonly reason?: FailureReason;
  readonly message?: string;
  readonly retryAt?: string;
  readonly nextCodeAt?: string;
  readonly clockSkewSeconds?: number;
  readonly storage?: "full";
}

export interface DisplayPayload {
  readonly deviceId: string;
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete?: string;
  readonly message: string;
  readonly issuedAt: string;
  /** On the agent's clock, which may be wrong: displays count down from `expiresIn` (or the MQTT 5 expiry) instead. */
  readonly expiresAt: string;
  /** The code's lifetime in seconds from `issuedAt`, as the provider gave it. */
  readonly expiresIn?: number;
}

/** Fields every event carries; subscribers de-duplicate on `id`. */
export interface EventEnvelope<T extends EventType> {
  readonly id: string;
  readonly type: T;
  readonly deviceId: string;
  readonly at: string;
}

export interface EventPayloads {
  code_issued: {
    userCode: string;
    verificationUri: string;
    verificationUriComplete?: string;
    expiresAt: string;
  };
  authenticated: {
    method: SignInMethod;
    claims: Claims;
    account: AccountSummary;
    verified: true;
    idToken?: string;
    idTokenReused?: true;
  };
  code_expired: { userCode: string; expiredAt: string; nextCodeAt: string };
  sign_in_failed: { reason: FailureReason; message: string; retryAt: string };
  signed_out: { reason: SignedOutReason; message: string };
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
