import { randomUUID } from "node:crypto";
import type { SignInPrompt } from "../events.js";
import type { EventPayload, EventPayloads, EventType } from "../mqtt/topics.js";

/** The envelope every event travels in, on MQTT and to webhooks alike: `{id, type, deviceId, at, ...data}`. */
export function eventEnvelope<T extends EventType>(
  type: T,
  deviceId: string,
  data: EventPayloads[T],
): EventPayload<T> {
  return { id: randomUUID(), type, deviceId, at: new Date().toISOString(), ...data };
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
