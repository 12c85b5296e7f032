import {
  InteractionRequiredAuthError,
  ServerError,
  type AccountInfo,
  type AuthenticationResult,
  type PublicClientApplication,
} from "@azure/msal-node";

/** An access token as apps receive it. The refresh token and the ID token never leave the agent. */
export interface AccessToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** When the provider said the token stops working (its `expires_in` from the moment the answer came). */
  readonly expiresOn: Date;
  /** The scopes the provider granted for it (what its answer says, else what was asked for). */
  readonly scopes: readonly string[];
}

/**
 * Why no token was given. `signed_out`: nobody is signed in; `unavailable`: the provider could not be asked (network,
 * server); `consent_required`, `interaction_required`, `invalid_scope`: the provider refused the scope itself (the
 * person stays signed in; an app cannot fix that without another sign-in that consents to it); `rate_limited`: too
 * many provider calls in a short time (`retryInMs` says when to ask again).
 */
export type AccessTokenErrorCode =
  | "signed_out"
  | "rate_limited"
  | "unavailable"
  | "consent_required"
  | "interaction_required"
  | "invalid_scope";

export class AccessTokenError extends Error {
  override readonly name = "AccessTokenError";
  readonly retryInMs: number | undefined;
  constructor(
    readonly code: AccessTokenErrorCode,
    message: string,
    options?: ErrorOptions & { readonly retryInMs?: number },
  ) {
    super(message, options);
    this.retryInMs = options?.retryInMs;
  }
}

/**
 * An access token for `scopes` of `account` through MSAL's silent acquisition: its cached token while valid, else
 * the provider's refresh grant for those scopes (RFC 6749 section 6 with `scope`). Only the provider's own answer
 * becomes a token; every failure is an {@link AccessTokenError} that says what an app can do about it.
 */
export async function acquireAccessToken(
  client: PublicClientApplication,
  account: AccountInfo,
  scopes: readonly string[],
): Promise<AccessToken> {
  let result: AuthenticationResult | null;
  try {
    result = await client.acquireTokenSilent({ account, scopes: [...scopes] });
  } catch (error) {
    throw accessTokenError(error, scopes);
  }
  if (!result?.accessToken || !result.expiresOn)
    throw new AccessTokenError("unavailable", "the identity provider's answer held no access token");
  return {
    accessToken: result.accessToken,
    tokenType: result.tokenType || "Bearer",
    expiresOn: result.expiresOn,
    scopes: result.scopes.length > 0 ? result.scopes : [...scopes],
  };
}

const SCOPE_REFUSALS = new Set(["consent_required", "interaction_required", "invalid_scope"]);

function accessTokenError(error: unknown, scopes: readonly string[]): AccessTokenError {
  const code =
    error instanceof InteractionRequiredAuthError || error instanceof ServerError
      ? [error.errorCode, error.subError].find((c) => SCOPE_REFUSALS.has(c))
      : undefined;
  if (code)
    return new AccessTokenError(
      code as "consent_required" | "interaction_required" | "invalid_scope",
      `the identity provider refused ${scopes.join(" ")} (${code}): the app's scope needs consent at sign-in`,
      { cause: error },
    );
  if (error instanceof InteractionRequiredAuthError)
    return new AccessTokenError(
      "interaction_required",
      `the identity provider wants the person to sign in again for ${scopes.join(" ")} (${error.errorCode})`,
      { cause: error },
    );
  return new AccessTokenError("unavailable", "the identity provider could not be reached for a token", {
    cause: error,
  });
}
