import { createHmac, timingSafeEqual } from "node:crypto";

/** The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's scheme). */
export const SIGNATURE_HEADER = "x-edge-signin-signature";

/** Signs a webhook body at `timestamp` (unix seconds): the value of the signature header. */
export function signWebhook(secret: string, body: string, timestamp: number): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

export interface VerifyOptions {
  /** Oldest signature accepted, in seconds; older requests are refused as possible replays. Default 300. */
  readonly toleranceSeconds?: number;
  /** Now, in unix seconds (for tests). */
  readonly now?: number;
}

/**
 * What a receiver does with a request: true when the body was signed with `secret` less than
 * `toleranceSeconds` ago. Receivers that must never act twice also de-duplicate on the event's `id`.
 */
export function verifyWebhook(
  secret: string,
  body: string,
  header: string | undefined,
  options: VerifyOptions = {},
): boolean {
  if (!header) return false;
  const parts = new Map<string, string[]>();
  for (const item of header.split(",")) {
    const [key, value] = item.split("=", 2);
    if (key && value) parts.set(key.trim(), [...(parts.get(key.trim()) ?? []), value.trim()]);
  }
  const timestamp = Number(parts.get("t")?.[0]);
  if (!Number.isInteger(timestamp)) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(hmac(secret, timestamp, body), "hex");
  // Several v1 values are allowed, as in Stripe's scheme, so a sender can sign with an old and a new secret.
  return (parts.get("v1") ?? []).some((candidate) => {
    const given = Buffer.from(candidate, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function hmac(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}
