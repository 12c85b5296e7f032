/**
 * Webhook secrets in Standard Webhooks' form (standardwebhooks.com). The shortest key taken is SHA-256's output
 * size: a shorter HMAC key is guessable offline from one signed request; the standard allows 24 to 64 bytes.
 */
export const MIN_SECRET_BYTES = 32;
export const SECRET_PREFIX = "whsec_";

/**
 * The key of a Standard Webhooks secret (`whsec_` then base64, or the base64 alone), or undefined when it is not
 * one or is shorter than {@link MIN_SECRET_BYTES}. The same text opens the same key in any Standard Webhooks
 * library, so a receiver can verify with its own.
 */
export function decodeWebhookSecret(secret: string): Buffer | undefined {
  const text = secret.trim().replace(/^whsec_/, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const key = Buffer.from(text, "base64");
  return key.length >= MIN_SECRET_BYTES ? key : undefined;
}

/** A new secret, as `openssl rand -base64 32` with the prefix would make it (for tests and examples). */
export function formatWebhookSecret(key: Buffer): string {
  return `${SECRET_PREFIX}${key.toString("base64")}`;
}
