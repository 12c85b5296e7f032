import { readFileSync } from "node:fs";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import type { Logger } from "pino";
import { EnvHttpProxyAgent, type Dispatcher } from "undici";
import type { ProxyConfig, RetryConfig } from "../config/index.js";
import { isDeviceCodePoll, pending, PollGuard } from "./poll-guard.js";
import { isSecureEndpoint, SECURE_ENDPOINT_RULE } from "../http/secure-endpoint.js";
import { describeFetchError } from "../http/fetch-error.js";
import {
  MAX_DOCUMENT_BYTES,
  MAX_TOKEN_RESPONSE_BYTES,
  readBoundedText,
  ResponseTooLargeError,
} from "../http/bounded-body.js";
import { ProviderClock } from "./provider-clock.js";
import { parseRetryAfter } from "./retry-after.js";

export interface NetworkClientOptions {
  /** Extra PEM CAs to trust on top of the system's and NODE_EXTRA_CA_CERTS. */
  readonly ca?: string | undefined;
  /** Timeout of one request, in ms. MSAL itself has none on POSTs, so a hung poll would hang forever. */
  readonly timeoutMs: number;
  /** HTTP(S) proxy to reach the provider through (HTTPS_PROXY, NO_PROXY); none when undefined. */
  readonly proxy?: ProxyConfig | undefined;
  /** Backoff of device-code polls while the provider is in trouble; without it, polls are not guarded. */
  readonly pollRetry?: RetryConfig | undefined;
  readonly log?: Logger | undefined;
  /** Where the provider's `Date` headers are noted (see ProviderClock); a private one when not given. */
  readonly clock?: ProviderClock | undefined;
}

/** Raised when the identity provider could not be reached or did not answer in time. */
export class IdpUnreachableError extends Error {
  override readonly name = "IdpUnreachableError";
}

/**
 * The provider asked us (`Retry-After` on a 429 or 503) not to call before `notBefore` (ms since the epoch):
 * the request was not sent.
 */
export class IdpBusyError extends IdpUnreachableError {
  constructor(readonly notBefore: number) {
    super(
      `the identity provider asked not to be called before ${new Date(notBefore).toISOString()} (Retry-After)`,
    );
  }
}

/** What a token request gets in place of the provider's answer when its flow ended while it was in flight. */
export const DISCARDED_TOKEN_ERROR = "edge_signin_discarded";

/**
 * MSAL's `system.networkClient`: the one place the agent's HTTP to the identity provider goes through,
 * so timeouts, trusted CAs and the proxy are ours to set (MSAL's own client reads none of them), and a
 * device-code poll that meets trouble keeps the code alive instead of ending the flow (see PollGuard).
 */
export class NetworkClient implements INetworkModule {
  private readonly dispatcher: Dispatcher;
  private readonly pollGuard: PollGuard | undefined;
  readonly clock: ProviderClock;
  /** Per origin: no request before this time (ms since the epoch), as the provider's Retry-After asked. */
  private readonly notBefore = new Map<string, number>();
  /**
   * The timeout of the next request, in ms: the setting, doubled after each request that timed out (a slow link
   * is no dead provider), up to {@link MAX_TIMEOUT_GROWTH} times the setting.
   */
  private timeoutMs: number;
  /** Bumped by discardTokensInFlight(): a token answer to a request sent before the bump is not for us any more. */
  private tokenEpoch = 0;
  /**
   * The ID token to hand MSAL with a refresh answer that has none (OpenID Connect Core 12.2 allows that): the
   * person's earlier one. Without it MSAL files the new refresh token under no account, keeps using the old
   * one (rotated, so refused) and the person is signed out at the next refresh.
   */
  standInIdToken: string | undefined;

  constructor(private readonly options: NetworkClientOptions) {
    this.dispatcher = createDispatcher(options.ca, options.proxy);
    this.pollGuard = options.pollRetry ? new PollGuard(options.pollRetry, options.log) : undefined;
    this.clock = options.clock ?? new ProviderClock(2_000);
    this.timeoutMs = options.timeoutMs;
  }

  /**
   * Every token request now in flight (a device-code poll, a refresh) belongs to a flow that was cancelled or
   * signed out: whatever tokens its answer carries are dropped here, before MSAL (and so the token cache) or any
   * event sees them. The request is answered to MSAL as the error {@link DISCARDED_TOKEN_ERROR}.
   */
  discardTokensInFlight(): void {
    this.tokenEpoch += 1;
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>(url, "GET", options, timeout);
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const epoch = this.tokenEpoch;
    const response = await this.post<T>(url, options);
    const grantType = new URLSearchParams(options?.body ?? "").get("grant_type");
    if (grantType === null || response.status !== 200) return response;
    if (epoch === this.tokenEpoch) return this.withIdToken(grantType, response);
    this.options.log?.info("tokens arrived for a flow that was cancelled or signed out; discarded unread");
    return {
      status: 400,
      headers: {},
      body: {
        error: DISCARDED_TOKEN_ERROR,
        error_description: "the flow ended while this request was in flight",
      } as T,
    };
  }

  private withIdToken<T>(grantType: string, response: NetworkResponse<T>): NetworkResponse<T> {
    const body = response.body as Record<string, unknown> | undefined;
    if (grantType !== "refresh_token" || !this.standInIdToken || typeof body !== "object" || body === null)
      return response;
    if (typeof body["id_token"] === "string" && body["id_token"] !== "") return response;
    this.options.log?.debug(
      "the refresh answer has no ID token (OpenID Connect Core 12.2); the earlier one stands",
    );
    return { ...response, body: { ...body, id_token: this.standInIdToken } as T };
  }

  private async post<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const guard = this.pollGuard;
    if (!guard || !isDeviceCodePoll(options?.body)) return this.send<T>(url, "POST", options);
    // The provider asked for quiet: the code on screen stays, MSAL hears "pending" and polls again later.
    if (this.waitFor(new URL(url).origin) > 0) return pending<T>();
    const held = guard.hold<T>(options?.body);
    if (held) return held;
    try {
      return guard.review(await this.exchange<T>(url, "POST", options));
    } catch (error) {
      return guard.review<T>({
        kind: "network",
        detail: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** Ms until every origin of the provider may be called again after a `Retry-After` (0: now). */
  quietForMs(): number {
    return Math.max(0, ...[...this.notBefore.keys()].map((origin) => this.waitFor(origin)));
  }

  /** Ms until the provider at `origin` may be called again (0: now). */
  private waitFor(origin: string): number {
    const notBefore = this.notBefore.get(origin);
    if (notBefore === undefined) return 0;
    const wait = notBefore - Date.now();
    if (wait <= 0) this.notBefore.delete(origin);
    return Math.max(0, wait);
  }

  /** A request timed out after `waitedMs`: the next one waits longer, once per timeout, up to the bound. */
  private timedOut(waitedMs: number): void {
    const next = Math.min(waitedMs * 2, this.options.timeoutMs * MAX_TIMEOUT_GROWTH);
    if (next <= this.timeoutMs) return;
    this.timeoutMs = next;
    this.options.log?.warn(
      { waitedSeconds: waitedMs / 1000, nextTimeoutSeconds: next / 1000 },
      "no answer from the identity provider in time (a slow link?); the next request waits longer (EDGE_SIGNIN_HTTP_TIMEOUT_SECONDS)",
    );
  }

  /** Fetches a JSON document (the discovery document) with the same timeouts and CAs. */
  async getJson(url: string): Promise<{ status: number; body: unknown }> {
    const response = await this.send<unknown>(url, "GET");
    return { status: response.status, body: response.body };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async send<T>(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return (await this.exchange<T>(url, method, options, timeout)).response;
  }

  /** One request; `json` tells whether the body really was JSON (a proxy's HTML error page is not). */
  private async exchange<T>(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<{ response: NetworkResponse<T>; json: boolean }> {
    const target = new URL(url);
    // Discovery refuses such endpoints already; this is the last line, whatever names a URL (MSAL derives some).
    if (!isSecureEndpoint(url))
      throw new IdpUnreachableError(`${method} ${target.origin}: refused, ${SECURE_ENDPOINT_RULE}`);
    const wait = this.waitFor(target.origin);
    if (wait > 0) throw new IdpBusyError(Date.now() + wait);
    const timeoutMs = Math.min(timeout ?? this.timeoutMs, this.timeoutMs);
    const signal = AbortSignal.timeout(timeoutMs);
    let status: number;
    let rawHeaders: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      // undici's request API rather than fetch: no WHATWG layer per request, and no second copy of undici (Node's
      // own, behind the global fetch) loaded into the process. No redirects are followed: OAuth endpoints send none.
      const response = await this.dispatcher.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method,
        headers: options?.headers ?? {},
        ...(method === "POST" ? { body: options?.body ?? "" } : {}),
        signal,
      });
      status = response.statusCode;
      rawHeaders = response.headers;
      // Documents (discovery, keys) are GETs, token answers POSTs: each read up to its own bound, never whole.
      const limit = method === "GET" ? MAX_DOCUMENT_BYTES : MAX_TOKEN_RESPONSE_BYTES;
      const what = `${method} ${target.origin}${target.pathname}`;
      text = await readBoundedText(response.body, limit, what, response.headers["content-length"]);
    } catch (error) {
      if (error instanceof ResponseTooLargeError) throw error;
      if (signal.aborted) this.timedOut(timeoutMs);
      throw new IdpUnreachableError(`${method} ${target.origin}: ${describeFetchError(error)}`, {
        cause: error,
      });
    }
    let body: T;
    let json = true;
    try {
      body = (text === "" ? {} : JSON.parse(text)) as T;
    } catch {
      // An HTML error page from a proxy or a load balancer: keep the status, let MSAL report it as a server error.
      body = { error: "invalid_response", error_description: `HTTP ${status}, not JSON` } as T;
      json = false;
    }
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(rawHeaders))
      if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(", ") : value;
    this.clock.observe(headers["date"]);
    if (status === 429 || status === 503) {
      const retryAfterMs = parseRetryAfter(headers["retry-after"], headers["date"]);
      if (retryAfterMs > 0) {
        this.notBefore.set(target.origin, Date.now() + retryAfterMs);
        this.options.log?.warn(
          { origin: target.origin, status, retryAfterSeconds: Math.round(retryAfterMs / 1000) },
          "the identity provider asked for a pause (Retry-After); no request goes to it before then",
        );
      }
    }
    return { response: { headers, body, status }, json };
  }
}

/** A request timeout grows (doubling after each request that timed out) to at most this many times the setting. */
const MAX_TIMEOUT_GROWTH = 4;

/**
 * undici's EnvHttpProxyAgent with the proxy settings passed in explicitly ("" where unset: it would otherwise
 * read process.env itself), so the agent's configuration is the one place they come from. The extra CAs
 * apply to the provider's TLS whether it is reached directly or through the proxy's tunnel, and to an
 * https:// proxy.
 */
function createDispatcher(ca: string | undefined, proxy: ProxyConfig | undefined): Dispatcher {
  const tls = ca ? { secureContext: secureContextFor(ca) } : undefined;
  return new EnvHttpProxyAgent({
    httpProxy: proxy?.httpProxy ?? "",
    httpsProxy: proxy?.httpsProxy ?? "",
    noProxy: proxy?.noProxy ?? "",
    // One kept-alive connection per origin: the agent's requests are few and mostly one after another, and a
    // second connection costs a TLS handshake on both ends. Without this, the signing-key prefetch that starts
    // beside MSAL's first poll opened one in every agent (500 in the storm, measured in bench/results). The price:
    // a request that hangs holds the next one back until its timeout; both go to the same server, which is
    // then most likely slow for either.
    connections: 1,
    ...(tls ? { connect: tls, requestTls: tls, proxyTls: tls } : {}),
  });
}

/**
 * One TLS context per CA bundle for the whole process. Given `ca` instead, Node builds a new context for every
 * connection, parsing all ~150 root certificates each time: about 100 ms of CPU per connection on a small
 * machine, which made a 500-agent sign-in storm take minutes (bench/results/latest.md). Contexts are
 * immutable, so sharing them is safe.
 */
const secureContexts = new Map<string, SecureContext>();

function secureContextFor(extra: string): SecureContext {
  let context = secureContexts.get(extra);
  if (!context) {
    context = createSecureContext({ ca: trustedCas(extra) });
    secureContexts.set(extra, context);
  }
  return context;
}

/** Giving `ca` replaces Node's trust store, so add back the system roots and NODE_EXTRA_CA_CERTS. */
function trustedCas(extra: string): string[] {
  const cas = [...rootCertificates, extra];
  const nodeExtra = process.env["NODE_EXTRA_CA_CERTS"];
  if (nodeExtra) {
    try {
      cas.push(readFileSync(nodeExtra, "utf8"));
    } catch {
      // Node already warned about an unreadable NODE_EXTRA_CA_CERTS at start-up.
    }
  }
  return cas;
}
