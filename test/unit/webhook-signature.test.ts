import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook } from "../../src/reporters/webhook-signature.js";

describe("webhook signatures (t=<unix>,v1=<HMAC-SHA256 of t.body>)", () => {
  const body = JSON.stringify({ id: "e1", type: "authenticated" });
  const now = 1_764_000_000;

  it("verifies what it signed", () => {
    const header = signWebhook("s3cret", body, now);
    expect(header).toMatch(/^t=1764000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook("s3cret", body, header, { now })).toBe(true);
  });

  it("rejects another secret, a changed body, a missing header", () => {
    const header = signWebhook("s3cret", body, now);
    expect(verifyWebhook("other", body, header, { now })).toBe(false);
    expect(verifyWebhook("s3cret", body.replace("e1", "e2"), header, { now })).toBe(false);
    expect(verifyWebhook("s3cret", body, undefined, { now })).toBe(false);
    expect(verifyWebhook("s3cret", body, "garbage", { now })).toBe(false);
  });

  it("rejects a replay older than the tolerance", () => {
    const header = signWebhook("s3cret", body, now - 301);
    expect(verifyWebhook("s3cret", body, header, { now })).toBe(false);
    expect(verifyWebhook("s3cret", body, header, { now, toleranceSeconds: 600 })).toBe(true);
  });

  it("accepts any of several v1 values (secret rotation)", () => {
    const [, v1] = signWebhook("new", body, now).split(",v1=");
    const header = `t=${now},v1=${"0".repeat(64)},v1=${v1 ?? ""}`;
    expect(verifyWebhook("new", body, header, { now })).toBe(true);
  });
});
