import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import * as z from "zod/mini";
import "../util/zod-messages.js";
import type { NetworkClient } from "./network-client.js";
import { writeFileAtomicSync } from "../storage/atomic-write.js";
import { readBoundedFile } from "../storage/state-file.js";
import { isSecureEndpoint, SECURE_ENDPOINT_RULE } from "../http/secure-endpoint.js";
import { describeBytes, MAX_DOCUMENT_BYTES, ResponseTooLargeError } from "../http/bounded-body.js";

/** The cache file holds one document (at most MAX_DOCUMENT_BYTES from the network) and its URL. */
const MAX_METADATA_BYTES = MAX_DOCUMENT_BYTES + 64 * 1024;

/** An endpoint the agent sends codes or tokens to, or takes keys from: https (src/http/secure-endpoint.ts). */
const endpoint = z.url().check(z.refine(isSecureEndpoint, SECURE_ENDPOINT_RULE));

/** The fields of a discovery document that name where secrets go or keys come from. */
const ENDPOINT_FIELDS = [
  "authorization_endpoint",
  "token_endpoint",
  "jwks_uri",
  "end_session_endpoint",
  "device_authorization_endpoint",
] as const;

/**
 * The discovery fields MSAL needs in `auth.authorityMetadata`, and the ones the agent reads itself. The same
 * schema checks a fetched document and the cached copy in STATE_DIR: a cached file naming `http://` endpoints is
 * no cache at all.
 */
const DiscoveryDocument = z.looseObject({
  issuer: z.url(),
  authorization_endpoint: endpoint,
  token_endpoint: endpoint,
  jwks_uri: endpoint,
  end_session_endpoint: z.optional(endpoint),
  device_authorization_endpoint: z.optional(endpoint),
});
export type DiscoveryDocument = z.infer<typeof DiscoveryDocument>;

const CacheFile = z.object({ url: z.string(), fetchedAt: z.number(), document: DiscoveryDocument });

/** A day, as MSAL's own metadata cache: endpoints move rarely, and a reboot should not wait for them. */
const FRESH_FOR_MS = 24 * 60 * 60 * 1000;
/** The provider's discovery document, cached in the state directory. */
export const METADATA_FILE = "authority-metadata.json";

export class DiscoveryError extends Error {
  override readonly name = "DiscoveryError";
}

/**
 * One place the document may be. All but the last are tried only if they answer: a candidate with `accept`
 * counts only when its document passes (Entra's v2.0 location on a host that does not say it is Microsoft's).
 */
export interface DiscoveryCandidate {
  readonly url: string;
  readonly accept?: (document: DiscoveryDocument) => boolean;
  /** Why a document `accept` refuses is no use, for the last candidate's error (and a cached copy is dropped). */
  readonly refusal?: string;
}

export interface DiscoveryResult {
  readonly document: DiscoveryDocument;
  /** The candidate's URL the document came from (or was cached for). */
  readonly url: string;
  readonly source: "network" | "cache";
}

export interface DiscoveryOptions {
  readonly log?: Logger | undefined;
}

/**
 * Reads the provider's discovery document ourselves instead of letting MSAL do it. MSAL 7.2 rejects an
 * issuer whose host differs from the authority's, which is exactly what External ID's document does
 * (issuer named by tenant GUID, and on `ciamlogin.com` behind a custom URL domain); metadata handed over in
 * `authorityMetadata` is not checked that way. The document is cached in the state directory so a reboot skips
 * the round trip.
 */
export async function discover(
  candidates: string | readonly DiscoveryCandidate[],
  http: NetworkClient,
  stateDir: string,
  options: DiscoveryOptions = {},
): Promise<DiscoveryResult> {
  const list = typeof candidates === "string" ? [{ url: candidates }] : candidates;
  const cached = await readCache(stateDir, list, options.log);
  if (cached && Date.now() - cached.fetchedAt < FRESH_FOR_MS)
    return { document: cached.document, url: cached.url, source: "cache" };
  try {
    const { url, document } = await fetchFirst(list, http);
    await writeCache(stateDir, { url, fetchedAt: Date.now(), document });
    return { document, url, source: "network" };
  } catch (error) {
    // A stale document beats no sign-in at all while the provider is briefly unreachable.
    if (cached) return { document: cached.document, url: cached.url, source: "cache" };
    throw error;
  }
}

async function fetchFirst(
  candidates: readonly DiscoveryCandidate[],
  http: NetworkClient,
): Promise<{ url: string; document: DiscoveryDocument }> {
  for (const [index, candidate] of candidates.entries()) {
    const last = index === candidates.length - 1;
    let answer: { status: number; body: unknown };
    try {
      answer = await getDocument(candidate.url, http);
    } catch (error) {
      // A look-up that fails in any way but size (a reset, a front that drops unknown paths) leaves the next one.
      if (last || error instanceof DiscoveryError) throw error;
      continue;
    }
    const { status, body } = answer;
    if (!last && (status !== 200 || !looksLikeDocument(body) || !acceptable(candidate, body))) continue;
    const document = parse(candidate.url, status, body);
    if (acceptable(candidate, document)) return { url: candidate.url, document };
    if (last)
      throw new DiscoveryError(
        `discovery document ${candidate.url} is not usable: ${candidate.refusal ?? "refused"}`,
      );
  }
  throw new DiscoveryError("no discovery document location to try");
}

async function getDocument(url: string, http: NetworkClient): Promise<{ status: number; body: unknown }> {
  try {
    return await http.getJson(url);
  } catch (error) {
    if (error instanceof ResponseTooLargeError)
      throw new DiscoveryError(
        `discovery document ${url} is larger than ${describeBytes(error.limitBytes)} (no real one is); ` +
          "not read further: check EDGE_SIGNIN_AUTHORITY",
        { cause: error },
      );
    throw error;
  }
}

function looksLikeDocument(body: unknown): body is { issuer: string } {
  return (
    typeof body === "object" && body !== null && typeof (body as { issuer?: unknown }).issuer === "string"
  );
}

function acceptable(candidate: DiscoveryCandidate, body: unknown): boolean {
  if (!candidate.accept) return true;
  try {
    return candidate.accept(body as DiscoveryDocument);
  } catch {
    return false;
  }
}

function parse(url: string, status: number, body: unknown): DiscoveryDocument {
  if (status !== 200) throw new DiscoveryError(`discovery document ${url} answered HTTP ${status}`);
  const parsed = DiscoveryDocument.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DiscoveryError(
      `discovery document ${url} is invalid: ${issue?.path.join(".")}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

async function readCache(
  stateDir: string,
  candidates: readonly DiscoveryCandidate[],
  log: Logger | undefined,
): Promise<z.infer<typeof CacheFile> | undefined> {
  // Bounded and regular files only: a FIFO or a huge file here is no cache, and is fetched afresh.
  const path = join(stateDir, METADATA_FILE);
  const read = await readBoundedFile(path, MAX_METADATA_BYTES);
  if (read.status !== "ok") return undefined;
  let content: unknown;
  try {
    content = JSON.parse(read.data.toString("utf8"));
  } catch {
    // Unreadable cache: it is only a cache, fetch afresh.
    return undefined;
  }
  const parsed = CacheFile.safeParse(content);
  if (!parsed.success) {
    const insecure = insecureEndpoint(content);
    if (insecure)
      log?.warn(
        { path, field: insecure.field, scheme: insecure.scheme },
        `the cached provider metadata names a non-https ${insecure.field}; discarded, fetching the discovery document again`,
      );
    return undefined;
  }
  const candidate = candidates.find((c) => c.url === parsed.data.url);
  return candidate && acceptable(candidate, parsed.data.document) ? parsed.data : undefined;
}

/** The first endpoint field of a cached document that is a URL but not https, if any. */
function insecureEndpoint(content: unknown): { field: string; scheme: string } | undefined {
  const document = (content as { document?: unknown } | null)?.document;
  if (typeof document !== "object" || document === null) return undefined;
  for (const field of ENDPOINT_FIELDS) {
    const value = (document as Record<string, unknown>)[field];
    if (typeof value === "string" && URL.canParse(value) && !isSecureEndpoint(value))
      return { field, scheme: new URL(value).protocol.replace(/:$/, "") };
  }
  return undefined;
}

async function writeCache(stateDir: string, content: z.infer<typeof CacheFile>): Promise<void> {
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // Optional: it yields to the token cache and the outbox when space runs short.
    writeFileAtomicSync(join(stateDir, METADATA_FILE), JSON.stringify(content), { optional: true });
  } catch {
    // A read-only or full disk must not stop sign-in; the next start fetches again.
  }
}
