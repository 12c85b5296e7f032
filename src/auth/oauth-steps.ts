import { performance } from "node:perf_hooks";
import type { FailureReason } from "../events.js";
import {
  describeAnswer,
  MAX_BODY_BYTES,
  objectOf,
  tokenAnswerKind,
  type NetworkClient,
  type ProviderAnswer,
} from "./network-client.js";

/**
 * The device authorization grant (RFC 8628) as request/process pairs, in the manner of panva's oauth4webapi:
 * each step sends one request and validates every field it reads from the answer, failing with an
 * {@link OAuthStepError} that names the problem and keeps its cause. Entra and External ID speak the same
 * protocol here (their `authorization_declined` is RFC 8628's `access_denied`).
 */

/** RFC 8628 §3.4. Entra's v2.0 token endpoint takes it too (MSAL sends Entra's short `device_code`). */
export const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";
/** RFC 8628 §3.2: a response without `interval` means 5 seconds. */
export const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval, for good. */
export const SLOW_DOWN_SECONDS = 5;

/** Bounds on what a provider sends; a value outside is refused or clamped, with one warning naming it. */
export const LIMITS = {
  /** Polls at least every minute: a person who approved should not wait longer (and timers overflow at 2^31 ms). */
  maxIntervalSeconds: 60,
  minIntervalSeconds: 1,
  /** A code shown longer than an hour is shown for an hour, then replaced (Entra: 15 min, RFC's example: 30). */
  maxExpiresInSeconds: 3600,
  /** A code a person types: Entra's has 9 characters, RFC 8628 suggests about 8. */
  maxUserCodeLength: 64,
  maxUriLength: 2048,
  maxMessageLength: 1024,
  maxDeviceCodeLength: 4096,
} as const;

export type OAuthStepErrorCode =
  /** The answer is not an OAuth answer at all (no `error`, `{}`, HTML, a gateway's page): try again later. */
  | "not_oauth"
  /** An OAuth error answer; `error` holds the provider's code. */
  | "oauth_error"
  /** A field the step needs is missing, malformed or out of its bounds. */
  | "invalid_field";

/** One protocol step failed; `reason` is what the agent acts on, `transient` says the same request may work later. */
export class OAuthStepError extends Error {
  override readonly name = "OAuthStepError";
  constructor(
    readonly code: OAuthStepErrorCode,
    readonly reason: FailureReason,
    message: string,
    readonly details: {
      readonly status?: number;
      readonly error?: string;
      readonly transient?: boolean;
    } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get transient(): boolean {
    return this.details.transient === true;
  }
}

/** A validated device authorization response (RFC 8628 §3.2). */
export interface DeviceAuthorization {
  readonly deviceCode: string;
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete?: string;
  readonly expiresInSeconds: number;
  readonly intervalSeconds: number;
  /** Entra's sentence for people; other providers send none. */
  readonly message?: string;
  /** `performance.now()` when the answer arrived: the code's lifetime runs from here, on a clock that cannot jump. */
  readonly receivedAt: number;
}

/** The tokens of a successful token response (RFC 6749 §5.1), validated. */
export interface TokenSet {
  readonly accessToken: string;
  readonly idToken?: string;
  readonly refreshToken?: string;
}

export type PollAnswer =
  | { readonly kind: "pending" }
  | { readonly kind: "slow_down" }
  | { readonly kind: "tokens"; readonly tokens: TokenSet };

export type Warn = (fields: Record<string, unknown>, message: string) => void;

export interface DeviceClient {
  readonly clientId: string;
  /** Every scope to ask for (`openid profile offline_access` included). */
  readonly scopes: readonly string[];
}

/** RFC 8628 §3.1: asks for a code. @throws OAuthStepError, IdpUnreachableError */
export async function requestDeviceAuthorization(
  http: NetworkClient,
  endpoint: string,
  client: DeviceClient,
  warn: Warn,
): Promise<DeviceAuthorization> {
  const form = new URLSearchParams({ client_id: client.clientId, scope: client.scopes.join(" ") });
  return processDeviceAuthorization(await http.postForm(endpoint, form, MAX_BODY_BYTES.small), warn);
}

/** RFC 8628 §3.2 and §3.5 (errors). */
export function processDeviceAuthorization(
  answer: ProviderAnswer,
  warn: Warn,
  receivedAt: number = performance.now(),
): DeviceAuthorization {
  const body = objectOf(answer.json);
  // A 200 that names neither code is a gateway's or a wrong endpoint's answer, not the provider's.
  if (
    answer.status !== 200 ||
    !body ||
    (body["device_code"] === undefined && body["user_code"] === undefined)
  )
    throw errorAnswer(answer, "the device authorization request");
  const deviceCode = requiredString(body, "device_code", LIMITS.maxDeviceCodeLength);
  const userCode = requiredString(body, "user_code", LIMITS.maxUserCodeLength);
  // Google's device flow, which predates the RFC, names the field verification_url.
  const uriField = body["verification_uri"] === undefined ? "verification_url" : "verification_uri";
  const verificationUri = requiredString(body, uriField, LIMITS.maxUriLength);
  if (!isHttpsUrl(verificationUri))
    throw invalid(`${uriField} is not an https URL; people could not be sent there safely`);
  const complete = optionalString(body, "verification_uri_complete", LIMITS.maxUriLength, warn);
  if (complete !== undefined && !isHttpsUrl(complete))
    warn({ field: "verification_uri_complete" }, "verification_uri_complete is no https URL; ignored");
  const message = optionalString(body, "message", LIMITS.maxMessageLength, warn);
  return {
    deviceCode,
    userCode,
    verificationUri,
    ...(complete !== undefined && isHttpsUrl(complete) ? { verificationUriComplete: complete } : {}),
    expiresInSeconds: expiresIn(body["expires_in"], warn),
    intervalSeconds: interval(body["interval"], warn),
    ...(message !== undefined ? { message } : {}),
    receivedAt,
  };
}

/** RFC 8628 §3.4: polls once. @throws OAuthStepError, IdpUnreachableError */
export async function requestDeviceToken(
  http: NetworkClient,
  tokenEndpoint: string,
  client: DeviceClient,
  deviceCode: string,
): Promise<PollAnswer> {
  const form = new URLSearchParams({
    grant_type: DEVICE_CODE_GRANT,
    client_id: client.clientId,
    device_code: deviceCode,
  });
  return processDeviceTokenAnswer(await http.postForm(tokenEndpoint, form, MAX_BODY_BYTES.token));
}

const DECLINED = new Set(["access_denied", "authorization_declined"]);
const EXPIRED = new Set(["expired_token", "code_expired"]);
/** Errors that say the provider is in trouble, not that the request was wrong (RFC 6749 §4.1.2.1). */
const TRANSIENT = new Set(["temporarily_unavailable", "server_error"]);

/** RFC 8628 §3.5 with RFC 6749 §5.1/§5.2. */
export function processDeviceTokenAnswer(answer: ProviderAnswer): PollAnswer {
  const kind = tokenAnswerKind(answer);
  if (kind === "tokens") return { kind: "tokens", tokens: processTokens(answer) };
  const error = kind === "error" ? String(objectOf(answer.json)?.["error"]) : undefined;
  if (error === "authorization_pending") return { kind: "pending" };
  if (error === "slow_down") return { kind: "slow_down" };
  throw errorAnswer(answer, "the token request");
}

function processTokens(answer: ProviderAnswer): TokenSet {
  const body = objectOf(answer.json) ?? {};
  const idToken = body["id_token"];
  const refreshToken = body["refresh_token"];
  if (idToken !== undefined && typeof idToken !== "string") throw invalid("id_token is not a string");
  if (refreshToken !== undefined && typeof refreshToken !== "string")
    throw invalid("refresh_token is not a string");
  return {
    accessToken: String(body["access_token"]),
    ...(idToken ? { idToken } : {}),
    ...(refreshToken ? { refreshToken } : {}),
  };
}

/** The error a failed step throws, from an answer that is an OAuth error, or no OAuth answer at all. */
function errorAnswer(answer: ProviderAnswer, step: string): OAuthStepError {
  const status = answer.status;
  if (tokenAnswerKind(answer) !== "error")
    return new OAuthStepError("not_oauth", "server", `${step} was answered ${describeAnswer(answer)}`, {
      status,
      transient: true,
    });
  const body = objectOf(answer.json) ?? {};
  const error = String(body["error"]).slice(0, 64);
  const description =
    typeof body["error_description"] === "string" ? `: ${body["error_description"].slice(0, 200)}` : "";
  const reason: FailureReason = DECLINED.has(error) ? "declined" : EXPIRED.has(error) ? "expired" : "server";
  const transient = TRANSIENT.has(error) || status === 429 || status >= 500;
  const text =
    reason === "declined"
      ? "the person declined the sign-in"
      : reason === "expired"
        ? "the code expired before anyone used it"
        : `${step} failed: ${error}${description}`;
  return new OAuthStepError("oauth_error", reason, text, { status, error, transient });
}

function invalid(message: string): OAuthStepError {
  return new OAuthStepError(
    "invalid_field",
    "server",
    `the identity provider's answer is unusable: ${message}`,
  );
}

function requiredString(body: Record<string, unknown>, field: string, maxLength: number): string {
  const value = body[field];
  if (typeof value !== "string" || value === "") throw invalid(`${field} is missing or not a string`);
  if (value.length > maxLength)
    throw invalid(
      `${field} has ${value.length} characters, over the ${maxLength} this agent accepts; check the provider's device flow settings`,
    );
  return value;
}

function optionalString(
  body: Record<string, unknown>,
  field: string,
  maxLength: number,
  warn: Warn,
): string | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length > maxLength) {
    warn(
      { field, length: typeof value === "string" ? value.length : undefined, maxLength },
      `the identity provider's ${field} is not a string of at most ${maxLength} characters; ignored (check the provider's device flow settings)`,
    );
    return undefined;
  }
  return value;
}

function expiresIn(value: unknown, warn: Warn): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 1)
    throw invalid("expires_in is missing or not a positive number of seconds");
  if (value > LIMITS.maxExpiresInSeconds) {
    warn(
      { field: "expires_in", value, max: LIMITS.maxExpiresInSeconds },
      `the identity provider's expires_in of ${value} s is over ${LIMITS.maxExpiresInSeconds} s: the code is shown for ${LIMITS.maxExpiresInSeconds} s, then replaced (check the provider's device code lifetime)`,
    );
    return LIMITS.maxExpiresInSeconds;
  }
  return Math.floor(value);
}

function interval(value: unknown, warn: Warn): number {
  if (value === undefined) return DEFAULT_INTERVAL_SECONDS;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    warn(
      { field: "interval", max: LIMITS.maxIntervalSeconds },
      `the identity provider's interval is not a number: polling every ${DEFAULT_INTERVAL_SECONDS} s (RFC 8628's default)`,
    );
    return DEFAULT_INTERVAL_SECONDS;
  }
  const clamped = Math.min(LIMITS.maxIntervalSeconds, Math.max(LIMITS.minIntervalSeconds, value));
  if (clamped !== value)
    warn(
      { field: "interval", value, min: LIMITS.minIntervalSeconds, max: LIMITS.maxIntervalSeconds },
      `the identity provider's interval of ${value} s is outside ${LIMITS.minIntervalSeconds}..${LIMITS.maxIntervalSeconds} s: polling every ${clamped} s (check the provider's device flow settings)`,
    );
  return clamped;
}

function isHttpsUrl(value: string): boolean {
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
}
