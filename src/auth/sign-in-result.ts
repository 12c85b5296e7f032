import {
  AuthError,
  InteractionRequiredAuthError,
  type AccountInfo,
  type AuthenticationResult,
} from "@azure/msal-node";
import type { AccountSummary, Authenticated, FailureReason, SignInMethod } from "../events.js";
import { applyClaimsPolicy } from "./claims-policy.js";
import { IdTokenError, type IdTokenVerifier } from "./id-token-verifier.js";
import { DiscardedAnswerError, IdpAnswerError, IdpUnreachableError } from "./network-client.js";
import { DeviceFlowEnded } from "./device-flow.js";
import { OAuthStepError } from "./oauth-steps.js";

/**
 * What a sign-in or renewal comes to: a verified result, or a coded error the state machine acts on. MSAL's and
 * the protocol steps' errors are translated here, where they enter the agent's vocabulary.
 */

/** A sign-in attempt that ended without a signed-in person, with a reason the agent can act on. */
export class SignInError extends Error {
  override readonly name = "SignInError";
  constructor(
    readonly reason: FailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The provider no longer accepts the cached session (refresh token revoked, expired or missing). */
export class SessionRejectedError extends Error {
  override readonly name = "SessionRejectedError";
}

/**
 * A sign-in or renewal the provider answered, its ID token verified: the `authenticated` event itself, declared
 * once in events.ts (a result whose ID token fails verification is a SignInError, `invalid_token`, instead).
 */
export type SignInResult = Authenticated;

/** What turns MSAL's unchecked ID token into claims the agent may publish. */
export interface ClaimsCheck {
  readonly verifier: IdTokenVerifier;
  /** `EDGE_SIGNIN_CLAIMS`; undefined = all. */
  readonly allowedClaims: readonly string[] | undefined;
  readonly publishIdToken: boolean;
}

/**
 * The one place an MSAL result becomes the agent's `SignInResult`, for device-code and silent sign-ins alike:
 * the raw tokens stop here and go no further.
 */
export async function toSignInResult(
  result: AuthenticationResult | null,
  method: SignInMethod,
  check: ClaimsCheck,
  /** The account as cached before a refresh: its ID token stands in when the refresh answer has none. */
  previous?: AccountInfo,
): Promise<SignInResult> {
  if (!result) throw new SignInError("server", "the identity provider returned no result");
  // OpenID Connect Core 12.2: a refresh answer "might not contain an id_token" (the network client then hands
  // MSAL the earlier one, which this provider issued). The person is still who the earlier ID token said; it is checked again (signature,
  // issuer, audience) at its own issue time.
  const reused =
    method === "refresh" && previous?.idToken && (!result.idToken || result.idToken === previous.idToken)
      ? previous
      : undefined;
  // MSAL only decodes the ID token: the claims we publish are the ones whose signature we checked ourselves.
  const verifiedClaims = reused
    ? await check.verifier.verifyEarlier(reused.idToken ?? "")
    : await check.verifier.verify(result.idToken);
  const idToken = reused ? reused.idToken : result.idToken;
  const { claims, account } = applyClaimsPolicy(
    verifiedClaims,
    summarise(reused ?? result.account),
    check.allowedClaims,
  );
  return {
    method,
    claims,
    account,
    verified: true,
    ...(check.publishIdToken && idToken ? { idToken } : {}),
    // What the provider granted (its `scope`; MSAL falls back to what was asked): apps learn what they may ask for.
    ...(result.scopes.length > 0 ? { scopes: [...result.scopes] } : {}),
    ...(reused ? { idTokenReused: true as const } : {}),
  };
}

export function summarise(account: AccountInfo | null): AccountSummary {
  return {
    username: account?.username ?? "",
    name: account?.name ?? "",
    tenantId: account?.tenantId ?? "",
    homeAccountId: account?.homeAccountId ?? "",
  };
}

/** Maps MSAL's errors, the protocol steps' and the network's onto the few outcomes the agent acts on. */
export function toSignInError(error: unknown): SignInError {
  if (error instanceof SignInError) return error;
  if (error instanceof DeviceFlowEnded)
    return new SignInError(error.outcome, error.message, { cause: error });
  if (error instanceof OAuthStepError) return new SignInError(error.reason, error.message, { cause: error });
  if (error instanceof IdpUnreachableError)
    return new SignInError("network", error.message, { cause: error });
  // By code, not class: MSAL may hand back a copy of an error it passed through.
  if (error instanceof AuthError && error.errorCode === IdpAnswerError.code)
    return new SignInError("server", error.message, { cause: error });
  if (error instanceof AuthError && error.errorCode === DiscardedAnswerError.code)
    return new SignInError("cancelled", error.message, { cause: error });
  if (error instanceof IdTokenError) return new SignInError(error.reason, error.message, { cause: error });
  if (error instanceof AuthError) {
    const code = error.errorCode;
    const serverError = error.errorMessage.split(/[\s:]/)[0] ?? "";
    if (code === "network_error" || code === "endpoints_resolution_error")
      return new SignInError("network", `identity provider unreachable (${code})`, { cause: error });
    return new SignInError(
      "server",
      `identity provider error: ${code}${serverError ? ` ${serverError}` : ""}`,
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SignInError("server", message, { cause: error });
}

/** invalid_grant and "interaction required" mean the refresh token is dead; anything else may pass. */
export function isRejection(error: unknown): boolean {
  if (error instanceof InteractionRequiredAuthError) return true;
  return error instanceof AuthError && rejectionCode(error) === "invalid_grant";
}

export function rejectionCode(error: unknown): string {
  if (!(error instanceof AuthError)) return "unknown";
  if (error.errorCode && error.errorCode !== "post_request_failed") return error.errorCode;
  return error.errorMessage.split(/[\s:]/)[0] || error.errorCode;
}
