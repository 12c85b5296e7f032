import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeWebhookSecret, MIN_SECRET_BYTES, SECRET_PREFIX } from "../crypto/webhook-secret.js";

/**
 * Standard Webhooks (standardwebhooks.com): three headers, the signature an HMAC-SHA256 of
 * `${webhook-id}.${webhook-timestamp}.${body}`, so the id and the time are signed with the body. The event's
 * type is the body's `type` field, signed with it: no unsigned header says what an event is.
 */
export const ID_HEADER = "webhook-id";
export const TIMESTAMP_HEADER = "webhook-timestamp";
export const SIGNATURE_HEADER = "webhook-signature";

/** The signature header's value for an event `id` sent at `timestamp` (unix seconds): `v1,<base64>`. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = decodeWebhookSecret(secret);
  if (!key)
    throw new TypeError(
      `a webhook secret is ${SECRET_PREFIX} and base64 of ${MIN_SECRET_BYTES} bytes or more`,
    );
  return `v1,${hmac(key, id, timestamp, body)}`;
}

/** The three headers of a delivery of `body` (an event whose `id` is `id`) at `timestamp`. */
export function webhookHeaders(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Record<string, string> {
  return {
    [ID_HEADER]: id,
    [TIMESTAMP_HEADER]: String(timestamp),
    [SIGNATURE_HEADER]: signWebhook(secret, id, timestamp, body),
  };
}

export interface VerifyOptions {
  /** Oldest (or furthest ahead) timestamp accepted, in seconds; others are refused as possible replays. Default 300. */
  readonly toleranceSeconds?: number;
  /** Now, in unix seconds (for tests). */
  readonly now?: number;
}

type HeaderBag = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * What a receiver does with a request: true when `body` (the raw bytes as text, before any JSON parsing) was
 * signed with `secret` for the request's `webhook-id` and `webhook-timestamp`, and that time is within
 * `toleranceSeconds` of now. Several space-separated `v1,` signatures are allowed (a sender rotating its
 * secret). Receivers that must never act twice also de-duplicate on `webhook-id` (the event's `id`).
 */
export function verifyWebhook(
  secret: string,
  body: string,
  headers: HeaderBag,
  options: VerifyOptions = {},
): boolean {
  const key = decodeWebhookSecret(secret);
  const id = header(headers, ID_HEADER);
  const stamp = header(headers, TIMESTAMP_HEADER);
  const signatures = header(headers, SIGNATURE_HEADER);
  if (!key || !id || !stamp || !signatures || !/^\d{1,12}$/.test(stamp)) return false;
  const timestamp = Number(stamp);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(hmac(key, id, timestamp, body), "base64");
  return signatures.split(" ").some((candidate) => {
    if (!candidate.startsWith("v1,")) return false;
    const given = Buffer.from(candidate.slice(3), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function header(headers: HeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  return typeof entry === "string" ? entry : undefined;
}

function hmac(key: Buffer, id: string, timestamp: number, body: string): string {
  return createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
}
