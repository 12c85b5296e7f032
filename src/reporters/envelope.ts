import { randomUUID } from "node:crypto";
import type { SignInPrompt } from "../events.js";
import type { EventPayload, EventPayloads, EventType } from "../mqtt/topics.js";

/** Id and time of each event raised, keyed by the emitted object, which every reporter receives as such. */
const stamps = new WeakMap<object, { readonly id: string; readonly at: string }>();

/**
 * The envelope every event travels in, on MQTT and to webhooks alike: `{id, type, deviceId, at, ...data}`.
 * `source` is the object the agent emitted: every reporter that wraps the same event gets the same `id` and
 * `at`, so a consumer that hears of it both over MQTT and by webhook can tell it is one event.
 */
export function eventEnvelope<T extends EventType>(
  type: T,
  deviceId: string,
  data: EventPayloads[T],
  source: object = data,
): EventPayload<T> {
  let stamp = stamps.get(source);
  if (!stamp) {
    stamp = { id: randomUUID(), at: new Date().toISOString() };
    stamps.set(source, stamp);
  }
  return { id: stamp.id, type, deviceId, at: stamp.at, ...data };
}

/** The `code_issued` event for a prompt: what a display needs, nothing more. */
export function codeIssued(prompt: SignInPrompt): EventPayloads["code_issued"] {
  return {
    userCode: prompt.userCode,
    verificationUri: prompt.verificationUri,
    ...(prompt.verificationUriComplete ? { verificationUriComplete: prompt.verificationUriComplete } : {}),
    expiresAt: prompt.expiresAt,
  };
}
