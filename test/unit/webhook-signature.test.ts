import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { decodeWebhookSecret, formatWebhookSecret } from "../../src/crypto/webhook-secret.js";
import { signWebhook, verifyWebhook, webhookHeaders } from "../../src/reporters/webhook-signature.js";

/**
 * Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. The reference library
 * (standardwebhooks on npm, what a receiver would use) checks what the agent signs, and the other way round.
 */
describe("webhook signatures (Standard Webhooks)", () => {
  const secret = formatWebhookSecret(randomBytes(32));
  const body = JSON.stringify({ id: "e1", type: "authenticated", deviceId: "tv" });
  const now = Math.floor(Date.now() / 1000);

  it("signs what the reference library verifies, and verifies what it signs", () => {
    const headers = webhookHeaders(secret, "e1", now, body);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, headers)).toStrictEqual(JSON.parse(body));
    const theirs = new Webhook(secret).sign("e1", new Date(now * 1000), body);
    expect(theirs).toBe(signWebhook(secret, "e1", now, body));
    const fetched = new Headers({
      "Webhook-Id": "e1",
      "Webhook-Timestamp": String(now),
      "Webhook-Signature": theirs,
    });
    expect(verifyWebhook(secret, body, fetched)).toBe(true);
  });

  it("covers the id, the time and the event's type: none can be changed without the key", () => {
    const headers = webhookHeaders(secret, "e1", now, body);
    const forged = [
      { ...headers, "webhook-id": "e2" },
      { ...headers, "webhook-timestamp": String(now - 1) },
    ];
    for (const h of forged) {
      expect(verifyWebhook(secret, body, h, { now })).toBe(false);
      expect(() => new Webhook(secret).verify(body, h)).toThrow();
    }
    const retyped = body.replace('"authenticated"', '"signed_out"');
    expect(verifyWebhook(secret, retyped, headers, { now })).toBe(false);
    expect(verifyWebhook(formatWebhookSecret(randomBytes(32)), body, headers, { now })).toBe(false);
    expect(verifyWebhook(secret, body, {}, { now })).toBe(false);
    expect(verifyWebhook(secret, body, { ...headers, "webhook-signature": "garbage" }, { now })).toBe(false);
  });

  it("refuses a timestamp outside the tolerance either way", () => {
    const old = webhookHeaders(secret, "e1", now - 301, body);
    expect(verifyWebhook(secret, body, old, { now })).toBe(false);
    expect(verifyWebhook(secret, body, old, { now, toleranceSeconds: 600 })).toBe(true);
    expect(verifyWebhook(secret, body, webhookHeaders(secret, "e1", now + 301, body), { now })).toBe(false);
  });

  it("accepts any of several space-separated signatures (a secret rotation)", () => {
    const headers = webhookHeaders(secret, "e1", now, body);
    const rotated = {
      ...headers,
      "webhook-signature": `v1,${Buffer.alloc(32).toString("base64")} ${headers["webhook-signature"]}`,
    };
    expect(verifyWebhook(secret, body, rotated, { now })).toBe(true);
  });

  it("takes only keys of 32 bytes or more, in Standard Webhooks' form", () => {
    expect(decodeWebhookSecret(formatWebhookSecret(Buffer.alloc(32, 1)))).toStrictEqual(Buffer.alloc(32, 1));
    expect(decodeWebhookSecret(Buffer.alloc(48, 2).toString("base64"))).toStrictEqual(Buffer.alloc(48, 2));
    for (const short of [
      "x",
      "whsec_x",
      formatWebhookSecret(Buffer.alloc(31, 1)),
      formatWebhookSecret(Buffer.alloc(16, 1)),
      "a passphrase of more than thirty-two characters, not base64",
    ])
      expect(decodeWebhookSecret(short)).toBeUndefined();
    expect(() => signWebhook("whsec_AAAA", "e1", now, body)).toThrow(/32 bytes or more/);
  });
});
