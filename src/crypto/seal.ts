import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

/**
 * Sealing at rest: AES-256-GCM in a small versioned JSON envelope. The one home of the agent's encryption, used
 * by the token cache (src/auth/cache-store.ts), the MQTT outbox and the webhook queue (src/storage/outbox.ts): what
 * they keep in STATE_DIR holds tokens or the person's claims.
 *
 * The key is exactly 32 random bytes, written as base64 (44 characters, `openssl rand -base64 32`) or hex
 * (64 characters, `openssl rand -hex 32`). No passphrases: a device has nobody to type one, and a random key
 * needs no key stretching. The envelope carries a key check value (an HMAC of a constant under the key) so a
 * wrong key is told apart from a damaged file: the first stops the agent, the second only signs it out.
 *
 * Opening accepts only what sealing makes: a 12-byte IV and a full 16-byte tag. GCM lets a decrypter accept
 * tags as short as 4 bytes, and Node does unless told the length: a 4-byte tag is forged in about 2^32 tries
 * (NIST SP 800-38D, appendix C), so anyone who can write STATE_DIR could plant "sealed" entries.
 */
export const ENVELOPE_FORMAT = "edge-signin-token-cache";
export const ENVELOPE_VERSION = 1;
const ALGORITHM = "aes-256-gcm";
const AAD = Buffer.from(`${ENVELOPE_FORMAT}/v${ENVELOPE_VERSION}`);
/** GCM's full tag (NIST SP 800-38D): the only length sealed or accepted. */
export const TAG_BYTES = 16;
/** GCM's recommended IV length (NIST SP 800-38D 8.2): the only length sealed or accepted. */
const IV_BYTES = 12;

export interface Envelope {
  readonly format: typeof ENVELOPE_FORMAT;
  readonly version: typeof ENVELOPE_VERSION;
  readonly alg: "A256GCM";
  /** First 16 hex digits of HMAC-SHA256(key, "edge-signin key check"). */
  readonly kcv: string;
  /** 12 bytes, base64. */
  readonly iv: string;
  /** 16 bytes, base64. */
  readonly tag: string;
  readonly ciphertext: string;
}

/** Returns the 32-byte key, or undefined when `text` is neither 32 bytes of base64 nor of hex. */
export function decodeSealingKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, "hex");
  if (/^[A-Za-z0-9+/]{43}=$/.test(trimmed) || /^[A-Za-z0-9_-]{43}$/.test(trimmed)) {
    const key = Buffer.from(trimmed, trimmed.includes("=") ? "base64" : "base64url");
    return key.length === 32 ? key : undefined;
  }
  return undefined;
}

function keyCheckValue(key: Buffer): string {
  return createHmac("sha256", key).update("edge-signin key check").digest("hex").slice(0, 16);
}

/** Seals `plaintext` (UTF-8) under the 32-byte `key`; returns the envelope as JSON text. */
export function seal(plaintext: string, key: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(AAD);
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const envelope: Envelope = {
    format: ENVELOPE_FORMAT,
    version: ENVELOPE_VERSION,
    alg: "A256GCM",
    kcv: keyCheckValue(key),
    iv: iv.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
    ciphertext: ciphertext.toString("base64"),
  };
  return JSON.stringify(envelope);
}

/** True for anything that claims to be our envelope, whole or not: it must never be read as plain text. */
export function looksSealed(parsed: unknown): parsed is Partial<Envelope> {
  return typeof parsed === "object" && parsed !== null && (parsed as Envelope).format === ENVELOPE_FORMAT;
}

export type OpenResult =
  | { readonly ok: true; readonly plaintext: string }
  | { readonly ok: false; readonly problem: "wrong_key" | "damaged" | "unsupported" };

/**
 * Opens an envelope made by {@link seal}. Never throws: a tag that is not 16 bytes is `damaged`.
 *
 * `wrong_key` is said only when the key check value is whole and another key's: the ciphertext does not open
 * under this key, and the stored value is 16 hex digits differing from this key's in most places (another
 * key's value agrees with ours in one digit of 16 on average; a damaged one differs in a few). A check value
 * that is malformed, a few digits off, or beside a ciphertext this key does open was damaged, not made by
 * another key: a wrong key stops the agent, damage only signs it out.
 */
export function open(envelope: Partial<Envelope>, key: Buffer): OpenResult {
  if (envelope.version !== ENVELOPE_VERSION || envelope.alg !== "A256GCM")
    return { ok: false, problem: "unsupported" };
  if (
    typeof envelope.kcv !== "string" ||
    typeof envelope.iv !== "string" ||
    typeof envelope.tag !== "string" ||
    typeof envelope.ciphertext !== "string"
  )
    return { ok: false, problem: "damaged" };
  const iv = Buffer.from(envelope.iv, "base64");
  const tag = Buffer.from(envelope.tag, "base64");
  const plaintext =
    iv.length === IV_BYTES && tag.length === TAG_BYTES
      ? decrypt(key, iv, tag, envelope.ciphertext)
      : undefined;
  const expected = keyCheckValue(key);
  if (envelope.kcv === expected)
    // The key is right, so a failed tag means the bytes were damaged.
    return plaintext === undefined ? { ok: false, problem: "damaged" } : { ok: true, plaintext };
  if (plaintext !== undefined || !/^[0-9a-f]{16}$/.test(envelope.kcv))
    return { ok: false, problem: "damaged" };
  return differingDigits(envelope.kcv, expected) <= MAX_DAMAGED_DIGITS
    ? { ok: false, problem: "damaged" }
    : { ok: false, problem: "wrong_key" };
}

/**
 * At most this many digits off is damage: a random other key's check value is this close to ours with a
 * chance of about 5 in 10^12 (the sum over k <= 4 of C(16, k) 15^k / 16^16).
 */
const MAX_DAMAGED_DIGITS = 4;

function differingDigits(a: string, b: string): number {
  let count = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) count++;
  return count;
}

function decrypt(key: Buffer, iv: Buffer, tag: Buffer, ciphertext: string): string | undefined {
  try {
    const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(AAD);
    decipher.setAuthTag(tag);
    const plaintext = Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64")), decipher.final()]);
    return plaintext.toString("utf8");
  } catch {
    return undefined;
  }
}
