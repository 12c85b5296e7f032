import type { NetworkResponse } from "@azure/msal-node";
import type { Logger } from "pino";
import { backoffDelay } from "../util/backoff.js";
import type { RetryConfig } from "../config/index.js";
import { parseRetryAfter } from "./retry-after.js";

/** The RFC 8628 grant type, and the short one MSAL posts in Entra's dialect. */
const DEVICE_CODE_GRANTS = new Set(["device_code", "urn:ietf:params:oauth:grant-type:device_code"]);
/** Errors a provider may put in a 4xx body that still mean "the server is in trouble, try later". */
const TRANSIENT_ERRORS = new Set(["temporarily_unavailable", "server_error"]);
/**
 * Longest pause between real polls while the provider is in trouble: a person who approved on their phone
 * should not wait more than this after the provider recovers.
 */
const MAX_POLL_BACKOFF_MS = 60_000;

/** What went wrong with one real poll, in words safe for a log line (never the body, never the code). */
export type PollTrouble =
  | { readonly kind: "network"; readonly detail: string }
  | { readonly kind: "http"; readonly status: number; readonly detail: string };

/** True for a token-endpoint POST that polls a device code (the only requests the guard handles). */
export function isDeviceCodePoll(body: string | undefined): boolean {
  return DEVICE_CODE_GRANTS.has(new URLSearchParams(body ?? "").get("grant_type") ?? "");
}

/**
 * Keeps a code on screen alive through identity provider or network trouble. MSAL ends the whole
 * device-code flow on any network error, 5xx or unparsable answer to a poll, and a 429 or 5xx it sees makes
 * its throttling refuse requests for a while; so for polls this guard never lets MSAL see trouble. It answers
 * MSAL "authorization_pending" instead (MSAL then waits its interval and polls the same code again), and
 * holds back the real polls with exponential backoff until the provider answers properly or the code expires.
 */
export class PollGuard {
  private failures = 0;
  private notBefore = 0;
  /** The code the failures belong to: a new code starts with a clean slate. Held in memory only. */
  private deviceCode: string | undefined;

  constructor(
    private readonly retry: RetryConfig,
    private readonly log: Logger | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** A synthetic "pending" answer while the backoff lasts; undefined when a real poll may go out now. */
  hold<T>(body: string | undefined): NetworkResponse<T> | undefined {
    this.switchTo(body);
    if (this.now() >= this.notBefore) return undefined;
    return pending<T>();
  }

  /**
   * Looks at a real poll's outcome: a response MSAL may see goes through (with any Retry-After removed,
   * which would make MSAL throttle the next poll); trouble becomes "pending" and a longer pause.
   */
  review<T>(outcome: { response: NetworkResponse<T>; json: boolean } | PollTrouble): NetworkResponse<T> {
    const trouble = "response" in outcome ? classify(outcome.response, outcome.json) : outcome;
    if (!trouble) {
      this.failures = 0;
      this.notBefore = 0;
      return "response" in outcome ? withoutRetryAfter(outcome.response) : pending<T>();
    }
    this.failures += 1;
    const retryAfterMs = "response" in outcome ? retryAfter(outcome.response) : 0;
    const delay = Math.max(
      backoffDelay(this.failures, {
        initialDelayMs: this.retry.initialDelayMs,
        maxDelayMs: Math.min(this.retry.maxDelayMs, MAX_POLL_BACKOFF_MS),
      }),
      Math.min(retryAfterMs, MAX_POLL_BACKOFF_MS),
    );
    this.notBefore = this.now() + delay;
    this.log?.warn(
      { trouble, failures: this.failures, nextPollInMs: delay },
      "identity provider trouble while polling; keeping the code on screen and polling again later",
    );
    return pending<T>();
  }

  private switchTo(body: string | undefined): void {
    const code = new URLSearchParams(body ?? "").get("device_code") ?? "";
    if (code === this.deviceCode) return;
    this.deviceCode = code;
    this.failures = 0;
    this.notBefore = 0;
  }
}

function classify<T>(response: NetworkResponse<T>, json: boolean): PollTrouble | undefined {
  const { status } = response;
  if (status === 429 || status >= 500) return { kind: "http", status, detail: `HTTP ${status}` };
  if (!json) return { kind: "http", status, detail: `HTTP ${status} with a body that is not JSON` };
  const body = response.body as { error?: unknown } | undefined;
  const error = typeof body?.error === "string" ? body.error : undefined;
  if (error && TRANSIENT_ERRORS.has(error)) return { kind: "http", status, detail: error };
  return undefined;
}

/** What MSAL reads as "nobody has entered the code yet": it waits its interval and polls again. */
export function pending<T>(): NetworkResponse<T> {
  return {
    status: 400,
    headers: {},
    body: {
      error: "authorization_pending",
      error_description: "edge-signin: the identity provider is not answering properly; polling again later",
    } as T,
  };
}

function withoutRetryAfter<T>(response: NetworkResponse<T>): NetworkResponse<T> {
  const headers = Object.fromEntries(
    Object.entries(response.headers).filter(([name]) => name.toLowerCase() !== "retry-after"),
  );
  return { ...response, headers };
}

function retryAfter<T>(response: NetworkResponse<T>): number {
  return parseRetryAfter(
    Object.entries(response.headers).find(([name]) => name.toLowerCase() === "retry-after")?.[1],
  );
}
