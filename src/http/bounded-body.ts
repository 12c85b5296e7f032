/**
 * Answers from the identity provider are read up to a bound, never whole: a provider (or whatever answers in its
 * name) that sends hundreds of MiB, or never stops, must not take the agent's memory with it.
 */

/** Discovery documents and signing-key sets are a few KiB (Entra's key set about 10 KiB). */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
/**
 * A token response: an ID token and an access token, each a few MB for a person with tens of thousands of group
 * claims, and a refresh token. The token cache (src/auth/cache-store.ts) holds what this admits, sealed.
 */
export const MAX_TOKEN_RESPONSE_BYTES = 8 * 1024 * 1024;

/** An answer longer than the bound: it was cut there and not used. */
export class ResponseTooLargeError extends Error {
  override readonly name = "ResponseTooLargeError";
  constructor(
    readonly limitBytes: number,
    what: string,
  ) {
    super(`${what}: the answer is larger than ${describeBytes(limitBytes)}; it was not read further`);
  }
}

/** `1 MiB`, `8 MiB`, `512 KiB`. */
export function describeBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/** The body stream of undici's `request()` (or any stream of Buffers that can be destroyed). */
export interface BodyStream extends AsyncIterable<Buffer | Uint8Array> {
  destroy(error?: Error): unknown;
}

/**
 * The body as text, or ResponseTooLargeError as soon as more than `maxBytes` arrived (or `Content-Length` says
 * it will): the stream is destroyed then, so the connection closes and nothing more is buffered.
 */
export async function readBoundedText(
  body: BodyStream,
  maxBytes: number,
  what: string,
  contentLength?: string | string[],
): Promise<string> {
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  if (Number.isFinite(declared) && declared > maxBytes) {
    body.destroy();
    throw new ResponseTooLargeError(maxBytes, what);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) {
      body.destroy();
      throw new ResponseTooLargeError(maxBytes, what);
    }
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total).toString("utf8");
}
