/**
 * The one typed event map shared by the agent, every reporter and library users.
 * Each event is declared once here; payloads are plain data, safe to serialise, and never hold a token.
 */

export const AGENT_STATES = ["starting", "signed_out", "awaiting_user", "signed_in", "error"] as const;
export type AgentState = (typeof AGENT_STATES)[number];

/**
 * Why a sign-in attempt ended without a signed-in person; `broker`: the agent stopped connecting to its broker
 * (another client keeps taking its client id), so it signs no one in until restarted.
 */
export type FailureReason =
  "declined" | "expired" | "network" | "server" | "cancelled" | "invalid_token" | "broker";

/** ID-token claims, as the provider issued them. */
export type Claims = Readonly<Record<string, unknown>>;

export interface AccountSummary {
  readonly username: string;
  readonly name: string;
  readonly tenantId: string;
  readonly homeAccountId: string;
}

/** What a display needs to show the code. Times are ISO 8601. */
export interface SignInPrompt {
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete?: string;
  readonly message: string;
  readonly issuedAt: string;
  /** `issuedAt` + `expiresIn` on the device's clock, which may be wrong: count down from `expiresIn` instead. */
  readonly expiresAt: string;
  /** The code's lifetime in seconds as the provider gave it (`expires_in`), from `issuedAt`. */
  readonly expiresIn: number;
  /** Seconds between the agent's polls of the token endpoint. */
  readonly intervalSeconds: number;
}

export interface StateChange {
  readonly state: AgentState;
  readonly since: string;
  /** Present in `signed_in`. */
  readonly account?: AccountSummary;
  /** Present in `awaiting_user`. */
  readonly expiresAt?: string;
  /** Present in `error`: what went wrong, and when the agent tries again. */
  readonly reason?: FailureReason;
  readonly message?: string;
  readonly retryAt?: string;
  /**
   * Present in `signed_out` between two codes (after an expired code, a declined or failed attempt, or a
   * `sign-in` command that came too soon after the last code): no code is shown, the next comes at this time.
   */
  readonly nextCodeAt?: string;
  /** Present (true) in `signed_out` after `cancel`: no code comes until a `sign-in` command. */
  readonly idle?: boolean;
  /**
   * The provider's clock minus the device's, in seconds, from the `Date` of its last answer; present while they
   * disagree by more than the ID token clock tolerance (ID tokens are then judged by the provider's clock).
   */
  readonly clockSkewSeconds?: number;
  /** Present while `STATE_DIR` refuses writes for lack of space: the session will not survive a restart. */
  readonly storage?: "full";
}

/** `device_code`: a person just entered the code; `refresh`: the cached session was renewed silently. */
export type SignInMethod = "device_code" | "refresh";

export interface Authenticated {
  readonly method: SignInMethod;
  /** The claims the claims policy lets leave the device (`EDGE_SIGNIN_CLAIMS`; all by default). */
  readonly claims: Claims;
  readonly account: AccountSummary;
  /** The ID token's signature, issuer, audience and lifetime were checked against the issuer's JWKS. */
  readonly verified: true;
  /** The raw ID token, only with `EDGE_SIGNIN_PUBLISH_ID_TOKEN=true`, for consumers that verify it themselves. */
  readonly idToken?: string;
  /**
   * Present (true) when the provider renewed the session without a new ID token (OpenID Connect Core 12.2
   * allows that on refresh): `claims` are those of the person's earlier ID token, whose signature, issuer and
   * audience were checked again (its lifetime is judged at its own issue time).
   */
  readonly idTokenReused?: true;
  /** The scopes the provider granted with this sign-in or renewal: what the device's apps may get tokens for. */
  readonly scopes?: readonly string[];
}

export interface SignInFailed {
  readonly reason: FailureReason;
  readonly message: string;
  /** When the agent starts the next attempt. */
  readonly retryAt: string;
}

/**
 * `requested`: the `sign-out` command; `rejected`: the provider refused the cached session (refresh token
 * revoked, expired or missing), so the person has to sign in again.
 */
export type SignedOutReason = "requested" | "rejected";

export interface SignedOut {
  readonly reason: SignedOutReason;
  readonly message: string;
}

export interface CodeExpired {
  readonly userCode: string;
  readonly expiredAt: string;
  /** When the agent issues the next code. */
  readonly nextCodeAt: string;
}

export interface BrokerStatus {
  readonly connected: boolean;
  /** The MQTT version of the connection that is up: 5, or 4 (3.1.1). */
  readonly protocolVersion?: 4 | 5;
  /**
   * Why the agent stopped connecting for good: `refused` (bad credentials, not authorised, banned, an untrusted
   * certificate; the `agent` command exits with code 4) or `client_id_conflict` (another client keeps taking our
   * client id; the agent keeps trying with backoff, unhealthy until `problemOver`). `message` is one line naming the setting to fix.
   */
  readonly problem?: { readonly kind: "refused" | "client_id_conflict"; readonly message: string };
  /** The problem of this kind is over (the other client that took our id has gone). */
  readonly problemOver?: "client_id_conflict";
}

export type PromptClearReason = "used" | "expired" | "cancelled" | "failed";

export interface AgentEvents {
  state: [change: StateChange];
  /** A code is ready to be shown. */
  prompt: [prompt: SignInPrompt];
  /** The code on screen is no longer valid. */
  prompt_cleared: [reason: PromptClearReason];
  authenticated: [event: Authenticated];
  code_expired: [event: CodeExpired];
  sign_in_failed: [event: SignInFailed];
  /** The session ended: the account is gone from the token cache. */
  signed_out: [event: SignedOut];
  /** The broker connection came up or went down (the agent keeps reconnecting on its own). */
  broker: [status: BrokerStatus];
}

export type AgentEventName = keyof AgentEvents;
