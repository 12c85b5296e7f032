import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { RetryConfig } from "../config/index.js";
import { backoffDelay } from "../util/backoff.js";
import { IdpUnreachableError, type NetworkClient } from "./network-client.js";
import {
  OAuthStepError,
  requestDeviceAuthorization,
  requestDeviceToken,
  SLOW_DOWN_SECONDS,
  type DeviceAuthorization,
  type DeviceClient,
  type TokenSet,
} from "./oauth-steps.js";

/**
 * Longest pause between real polls while the provider is in trouble: a person who approved on their phone
 * should not wait more than this after the provider recovers.
 */
const MAX_POLL_BACKOFF_MS = 60_000;

export interface DeviceFlowOptions {
  readonly http: NetworkClient;
  readonly deviceAuthorizationEndpoint: string;
  readonly tokenEndpoint: string;
  readonly client: DeviceClient;
  /** Backoff of polls while the provider is in trouble. */
  readonly retry: RetryConfig;
  readonly log: Logger;
}

/** The flow ended without tokens: the code's lifetime passed, the person declined, or the flow was cancelled. */
export class DeviceFlowEnded extends Error {
  override readonly name = "DeviceFlowEnded";
  constructor(
    readonly outcome: "expired" | "declined" | "cancelled",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * One device authorization grant, as the agent's own loop: ask for a code, hand it to `onCode`, poll until the
 * provider answers with tokens or ends the code. Every wait runs on the monotonic clock from the moment the
 * answer arrived, so a wall clock stepped by NTP neither ends a code early nor keeps one late.
 * - `authorization_pending`: poll again after the interval; `slow_down`: the interval grows by 5 s for good.
 * - trouble (no answer, a 5xx, an answer that is no OAuth answer): the code stays, polls back off, and never
 *   faster than the interval or a `Retry-After`.
 * - `access_denied` / `authorization_declined`, `expired_token`, the lifetime passing: DeviceFlowEnded.
 * - an abort of `signal`: DeviceFlowEnded `cancelled` at once; the answer to a poll in flight is dropped unread.
 * @throws DeviceFlowEnded, OAuthStepError (a code the provider would not give, a poll it refused),
 *   IdpUnreachableError (no code could be asked for).
 */
export async function runDeviceFlow(
  options: DeviceFlowOptions,
  signal: AbortSignal,
  onCode: (code: DeviceAuthorization) => void,
): Promise<TokenSet> {
  const { http, log } = options;
  const warn = (fields: Record<string, unknown>, message: string) => log.warn(fields, message);
  // A refused answer is reported once, as the sign-in failure it causes (its message names the field).
  const code = await requestDeviceAuthorization(
    http,
    options.deviceAuthorizationEndpoint,
    options.client,
    warn,
  );
  throwIfAborted(signal);
  onCode(code);
  const expiresAt = code.receivedAt + code.expiresInSeconds * 1000;
  let intervalMs = code.intervalSeconds * 1000;
  let wait = intervalMs;
  let troubles = 0;
  // Bounded by the code's lifetime: at least a second between polls, and the lifetime at most an hour.
  while (performance.now() < expiresAt) {
    const left = expiresAt - performance.now();
    await abortableSleep(Math.min(wait, left), signal);
    if (performance.now() >= expiresAt) break;
    let answer: Awaited<ReturnType<typeof requestDeviceToken>>;
    try {
      answer = await requestDeviceToken(http, options.tokenEndpoint, options.client, code.deviceCode);
    } catch (error) {
      throwIfAborted(signal);
      if (!isTrouble(error)) throw ended(error) ?? error;
      troubles += 1;
      wait = Math.max(
        intervalMs,
        backoffDelay(troubles, {
          initialDelayMs: options.retry.initialDelayMs,
          maxDelayMs: Math.min(options.retry.maxDelayMs, MAX_POLL_BACKOFF_MS),
        }),
        Math.min(http.quietForMs(), MAX_POLL_BACKOFF_MS),
      );
      log.warn(
        {
          reason: error instanceof OAuthStepError ? error.reason : "network",
          trouble: error instanceof Error ? error.message : String(error),
          failures: troubles,
          nextPollInMs: wait,
        },
        "identity provider trouble while polling; keeping the code on screen and polling again later",
      );
      continue;
    }
    // Cancelled while the poll was out: whatever it brought is not for anyone.
    throwIfAborted(signal);
    troubles = 0;
    if (answer.kind === "tokens") return answer.tokens;
    if (answer.kind === "slow_down") {
      intervalMs += SLOW_DOWN_SECONDS * 1000;
      log.info(
        { extraSeconds: intervalMs / 1000 - code.intervalSeconds, intervalSeconds: intervalMs / 1000 },
        "the identity provider asked to poll more slowly; keeping the code, polling less often",
      );
    }
    wait = intervalMs;
  }
  throw new DeviceFlowEnded("expired", "the code expired before anyone used it");
}

/** Trouble that may pass: the code on screen stays and the same poll goes out again later. */
function isTrouble(error: unknown): boolean {
  if (error instanceof IdpUnreachableError) return true;
  return error instanceof OAuthStepError && error.transient;
}

function ended(error: unknown): DeviceFlowEnded | undefined {
  if (!(error instanceof OAuthStepError)) return undefined;
  if (error.reason === "declined" || error.reason === "expired")
    return new DeviceFlowEnded(error.reason, error.message, { cause: error });
  return undefined;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new DeviceFlowEnded("cancelled", "sign-in cancelled");
}

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throwIfAborted(signal);
  }
}
