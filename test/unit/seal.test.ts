import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { open, seal, TAG_BYTES, type Envelope } from "../../src/crypto/seal.js";

describe("sealing (AES-256-GCM) shared by the token cache, the outbox and the webhook queue", () => {
  const key = randomBytes(32);
  const sealed = () => JSON.parse(seal("the person's claims", key)) as Envelope;

  it("opens what it sealed, with a full 16-byte tag", () => {
    const envelope = sealed();
    expect(Buffer.from(envelope.tag, "base64")).toHaveLength(TAG_BYTES);
    expect(open(envelope, key)).toStrictEqual({ ok: true, plaintext: "the person's claims" });
  });

  it.each([4, 8, 12, 15])("refuses a tag cut to %i bytes (GCM would check only those)", (bytes) => {
    const envelope = sealed();
    const tag = Buffer.from(envelope.tag, "base64").subarray(0, bytes).toString("base64");
    expect(open({ ...envelope, tag }, key)).toStrictEqual({ ok: false, problem: "damaged" });
  });

  it("refuses an IV that is not 12 bytes", () => {
    const envelope = sealed();
    expect(open({ ...envelope, iv: randomBytes(16).toString("base64") }, key)).toStrictEqual({
      ok: false,
      problem: "damaged",
    });
  });
});
