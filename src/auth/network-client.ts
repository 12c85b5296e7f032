import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import {
  AuthError,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from "@azure/msal-node";
import type { Logger } from "pino";
import { EnvHttpProxyAgent, type Dispatcher } from "undici";
import type { ProxyConfig } from "../config/index.js";
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
  /** Timeout of one request, in ms. MSAL itself has none on POSTs, so a hung request would hang forever. */
  readonly timeoutMs: number;
  /** HTTP(S) proxy to reach the provider through (HTTPS_PROXY, NO_PROXY); none when undefined. */
  readonly proxy?: ProxyConfig | undefined;
  readonly log?: Logger | undefined;
  /** Where the provider's `Date` headers are noted (see ProviderClock); a private one when not given. */
  readonly clock?: ProviderClock | undefined;
}

/** Raised when the identity provider could not be reached or did not answer in time. */
export class IdpUnreachableError extends Error {
  override readonly name: string = "IdpUnreachableError";
}

/** The provider asked us (`Retry-After` on a 429 or 503) for a pause that has not passed: the request was not sent. */
export class IdpBusyError extends IdpUnreachableError {
  override readonly name = "IdpBusyError";
  constructor(readonly waitMs: number) {
    super(`the identity provider asked for a pause of ${Math.ceil(waitMs / 1000)} s more (Retry-After)`);
  }
}

/**
 * An answer that is no OAuth answer (a gateway's `{"message":"Forbidden"}`, `{}`, an HTML page), or one over the
 * size bound: a server problem, never a result. An MSAL `AuthError`, so MSAL hands it back to us as it is
 * (anything else it wraps in its own `network_error`).
 */
export class IdpAnswerError extends AuthError {
  static readonly code = "edge_signin_not_oauth";
  override readonly name = "IdpAnswerError";
  constructor(
    /** AuthError keeps no message of its own in MSAL's build; this is ours. */
    readonly detail: string,
    readonly status: number,
  ) {
    super(IdpAnswerError.code, detail);
    this.message = detail;
    // AuthError's constructor pins its own prototype; restore ours so `instanceof` works.
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** Tokens arrived for a flow that was cancelled or signed out: they were dropped unread (see discardTokensInFlight). */
export class DiscardedAnswerError extends AuthError {
  static readonly code = "edge_signin_discarded";
  override readonly name = "DiscardedAnswerError";
  constructor() {
    super(DiscardedAnswerError.code, "the flow ended while its token request was in flight");
    this.message = "the flow ended while its token request was in flight";
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** One answer as read: `json` is undefined when the body was not JSON. */
export interface ProviderAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly json: unknown;
}

/** Largest bodies read, by kind of request; a larger one is cut off unread (IdpAnswerError). */
export const MAX_BODY_BYTES = {
  /** Discovery documents and signing keys. */
  get: MAX_DOCUMENT_BYTES,
  /** Token answers: an ID token with tens of thousands of group claims runs to a few MiB. */
  token: MAX_TOKEN_RESPONSE_BYTES,
  /** A device authorization answer: a few hundred bytes. */
  small: 64 * 1024,
} as const;

/** A JSON object, or undefined. */
export function objectOf(json: unknown): Record<string, unknown> | undefined {
  return typeof json === "object" && json !== null && !Array.isArray(json)
    ? (json as Record<string, unknown>)
    : undefined;
}

/**
 * What a token endpoint's answer is, by RFC 6749 §5.1/§5.2: `tokens` (200 with an `access_token` and a
 * `token_type`), an OAuth `error`, or nothing of the kind (undefined).
 */
export function tokenAnswerKind(answer: ProviderAnswer): "tokens" | "error" | undefined {
  const body = objectOf(answer.json);
  if (!body) return undefined;
  if (typeof body["error"] === "string" && body["error"] !== "" && answer.status !== 200) return "error";
  if (
    answer.status === 200 &&
    typeof body["access_token"] === "string" &&
    body["access_token"] !== "" &&
    typeof body["token_type"] === "string"
  )
    return "tokens";
  return undefined;
}

/** Words for a log line about an answer that is no OAuth answer (never its body: it may echo a secret). */
export function describeAnswer(answer: ProviderAnswer): string {
  if (answer.json === undefined) return `HTTP ${answer.status} with a body that is not JSON`;
  const body = objectOf(answer.json);
  return `HTTP ${answer.status} with a JSON body that is no OAuth answer${body ? ` (fields: ${Object.keys(body).slice(0, 5).join(", ") || "none"})` : ""}`;
}

/**
 * The one place the agent's HTTP to the identity provider goes through (its own protocol steps, and MSAL as its
 * `system.networkClient`), so timeouts, trusted CAs, the proxy, size bounds and `Retry-After` are ours to set.
 * MSAL only ever receives answers the provider sent: a token answer that is neither tokens nor an OAuth error
 * is refused here (IdpAnswerError), before MSAL could read it as a success.
 */
export class NetworkClient implements INetworkModule {
  private readonly dispatcher: Dispatcher;
  readonly clock: ProviderClock;
  /** Per origin: no request before this `performance.now()`, as the provider's Retry-After asked. */
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
   * person's earlier one, which this provider issued. Without it MSAL files the new refresh token under no
   * account, keeps using the old one (rotated, so refused) and the person is signed out at the next refresh.
   */
  standInIdToken: string | undefined;

  constructor(private readonly options: NetworkClientOptions) {
    this.dispatcher = createDispatcher(options.ca, options.proxy);
    this.clock = options.clock ?? new ProviderClock(2_000);
    this.timeoutMs = options.timeoutMs;
  }

  /** A token answer to any request now in flight is dropped unread: its flow was cancelled or signed out. */
  discardTokensInFlight(): void {
    this.tokenEpoch += 1;
  }

  /** The current epoch, for callers that drop answers themselves (the device flow). */
  get epoch(): number {
    return this.tokenEpoch;
  }

  async sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const answer = await this.exchange(url, "GET", options, timeout);
    return { status: answer.status, headers: answer.headers, body: (answer.json ?? {}) as T };
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const epoch = this.tokenEpoch;
    const grantType = new URLSearchParams(options?.body ?? "").get("grant_type");
    const answer = await this.exchange(url, "POST", options, undefined, MAX_BODY_BYTES.token);
    const response = { status: answer.status, headers: answer.headers, body: (answer.json ?? {}) as T };
    if (grantType === null) return response;
    const kind = tokenAnswerKind(answer);
    if (!kind)
      throw new IdpAnswerError(`the token endpoint answered ${describeAnswer(answer)}`, answer.status);
    if (kind === "error") return response;
    if (epoch !== this.tokenEpoch) {
      this.options.log?.info("tokens arrived for a flow that was cancelled or signed out; dropped unread");
      throw new DiscardedAnswerError();
    }
    return grantType === "refresh_token" ? this.withIdToken(response) : response;
  }

  private withIdToken<T>(response: NetworkResponse<T>): NetworkResponse<T> {
    const body = response.body as Record<string, unknown>;
    if (!this.standInIdToken || (typeof body["id_token"] === "string" && body["id_token"] !== ""))
      return response;
    this.options.log?.debug(
      "the refresh answer has no ID token (OpenID Connect Core 12.2); the earlier one stands",
    );
    return { ...response, body: { ...body, id_token: this.standInIdToken } as T };
  }

  /** POSTs a form for the agent's own protocol steps; the answer as read, within `maxBytes`. */
  postForm(url: string, form: URLSearchParams, maxBytes: number): Promise<ProviderAnswer> {
    return this.exchange(
      url,
      "POST",
      { body: form.toString(), headers: { "content-type": "application/x-www-form-urlencoded" } },
      undefined,
      maxBytes,
    );
  }

  /** Ms until every origin of the provider may be called again after a `Retry-After` (0: now). */
  quietForMs(): number {
    return Math.max(0, ...[...this.notBefore.keys()].map((origin) => this.waitFor(origin)));
  }

  /** Ms until the provider at `origin` may be called again (0: now). */
  private waitFor(origin: string): number {
    const notBefore = this.notBefore.get(origin);
    if (notBefore === undefined) return 0;
    const wait = notBefore - performance.now();
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

  /** Fetches a JSON document (the discovery document, signing keys) with the same timeouts, CAs and bounds. */
  async getJson(url: string): Promise<{ status: number; body: unknown }> {
    const answer = await this.exchange(url, "GET");
    if (answer.json === undefined) return { status: answer.status, body: {} };
    return { status: answer.status, body: answer.json };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** One request, its body read up to `maxBytes` and parsed as JSON where it is JSON. */
  private async exchange(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    timeout?: number,
    maxBytes: number = MAX_BODY_BYTES.get,
  ): Promise<ProviderAnswer> {
    const target = new URL(url);
    // Discovery refuses such endpoints already; this is the last line, whatever names a URL (MSAL derives some).
    if (!isSecureEndpoint(url))
      throw new IdpUnreachableError(`${method} ${target.origin}: refused, ${SECURE_ENDPOINT_RULE}`);
    const wait = this.waitFor(target.origin);
    if (wait > 0) throw new IdpBusyError(wait);
    const timeoutMs = Math.min(timeout ?? this.timeoutMs, this.timeoutMs);
    const signal = AbortSignal.timeout(timeoutMs);
    let status = 0;
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
      const what = `${method} ${target.origin}${target.pathname}`;
      text = await readBoundedText(response.body, maxBytes, what, response.headers["content-length"]);
    } catch (error) {
      // Discovery and the key set say so in their own words; a token endpoint's answer must reach MSAL as an
      // AuthError, or MSAL reports it as a network error.
      if (error instanceof ResponseTooLargeError)
        throw method === "POST" ? new IdpAnswerError(error.message, status) : error;
      if (signal.aborted) this.timedOut(timeoutMs);
      throw new IdpUnreachableError(`${method} ${target.origin}: ${describeFetchError(error)}`, {
        cause: error,
      });
    }
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      // An HTML error page from a proxy or a load balancer.
      json = undefined;
    }
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(rawHeaders))
      if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(", ") : value;
    this.clock.observe(headers["date"]);
    if (status === 429 || status === 503) {
      const retryAfterMs = parseRetryAfter(headers["retry-after"], headers["date"]);
      if (retryAfterMs > 0) {
        this.notBefore.set(target.origin, performance.now() + retryAfterMs);
        this.options.log?.warn(
          { origin: target.origin, status, retryAfterSeconds: Math.round(retryAfterMs / 1000) },
          "the identity provider asked for a pause (Retry-After); no request goes to it before then",
        );
      }
    }
    return { status, headers, json };
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
