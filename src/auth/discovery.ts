import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import "../util/zod-messages.js";
import type { NetworkClient } from "./network-client.js";
import { writeFileAtomicSync } from "../storage/atomic-write.js";
import { readStateFile } from "../storage/state-file.js";

/** A discovery document is a few KiB; a file far larger is not one. */
const MAX_METADATA_BYTES = 256 * 1024;
import { isSecureEndpoint, SECURE_ENDPOINT_RULE } from "../http/secure-endpoint.js";

/** An endpoint the agent sends codes or tokens to, or takes keys from: https (src/http/secure-endpoint.ts). */
const endpoint = z.url().check(z.refine(isSecureEndpoint, SECURE_ENDPOINT_RULE));

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

export interface DiscoveryResult {
  readonly document: DiscoveryDocument;
  readonly source: "network" | "cache";
}

/**
 * Reads the provider's discovery document ourselves instead of letting MSAL do it. MSAL 7.2 rejects an
 * issuer whose host differs from the authority's, which is exactly what External ID's document does
 * (issuer named by tenant GUID); metadata handed over in `authorityMetadata` is not checked that way.
 * The document is cached in the state directory so a reboot skips the round trip.
 */
export async function discover(url: string, http: NetworkClient, stateDir: string): Promise<DiscoveryResult> {
  const cached = await readCache(stateDir, url);
  if (cached && Date.now() - cached.fetchedAt < FRESH_FOR_MS)
    return { document: cached.document, source: "cache" };
  try {
    const document = await fetchDocument(url, http);
    await writeCache(stateDir, { url, fetchedAt: Date.now(), document });
    return { document, source: "network" };
  } catch (error) {
    // A stale document beats no sign-in at all while the provider is briefly unreachable.
    if (cached) return { document: cached.document, source: "cache" };
    throw error;
  }
}

async function fetchDocument(url: string, http: NetworkClient): Promise<DiscoveryDocument> {
  const { status, body } = await http.getJson(url);
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

async function readCache(stateDir: string, url: string): Promise<z.infer<typeof CacheFile> | undefined> {
  // Bounded and regular files only: a FIFO or a huge file here is no cache, and is fetched afresh.
  const read = await readStateFile(join(stateDir, METADATA_FILE), MAX_METADATA_BYTES);
  if (read.status !== "ok") return undefined;
  try {
    const parsed = CacheFile.safeParse(JSON.parse(read.data.toString("utf8")));
    return parsed.success && parsed.data.url === url ? parsed.data : undefined;
  } catch {
    // Missing or unreadable cache: it is only a cache, fetch afresh.
    return undefined;
  }
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
