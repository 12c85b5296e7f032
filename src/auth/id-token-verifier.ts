import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  errors,
  jwtVerify,
  type FetchImplementation,
  type JWK,
} from "jose";
import type { Claims } from "../events.js";
import { IdpUnreachableError } from "./network-client.js";

/** Asymmetric algorithms only: a public JWKS can never vouch for a MAC, and `none` is no signature. */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export interface IdTokenVerifierOptions {
  /** `issuer` of the discovery document; Entra's multi-tenant `{tenantid}` placeholder is filled from `tid`. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** The client id: the only audience this device accepts. */
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  readonly timeoutMs: number;
  /** Fetch with the identity provider's trusted CAs (jose would otherwise use the global fetch). */
  readonly fetch: FetchImplementation;
}

/** Why an ID token was not accepted: `invalid_token` (forged, expired, wrong audience...) or the JWKS was unreachable. */
export class IdTokenError extends Error {
  override readonly name = "IdTokenError";
  constructor(
    readonly reason: "invalid_token" | "network" | "server",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Checks an ID token before anyone trusts its claims: MSAL decodes ID tokens but never checks their signature.
 * The JWKS is fetched once, cached by jose, and fetched again when a token names a key it does not know
 * (the provider rotated its keys), at most every 30 s.
 */
export class IdTokenVerifier {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly options: IdTokenVerifierOptions) {
    this.jwks = createRemoteJWKSet(new URL(options.jwksUri), {
      timeoutDuration: options.timeoutMs,
      [customFetch]: options.fetch,
    });
  }

  /**
   * Fetches the signing keys ahead of need, while a code is on screen and the person is busy with it, so
   * the ID token that arrives on approval is checked without a round trip. A failure here costs nothing:
   * `verify` fetches again.
   */
  prefetch(): void {
    if (this.jwks.fresh || this.jwks.reloading) return;
    this.jwks
      .reload()
      .then(() => this.importKeys())
      .catch(() => undefined);
  }

  /**
   * jose turns a JWK into a WebCrypto key on its first use (~3 ms, and the first use loads WebCrypto itself);
   * asking for each key now, with the algorithm it will be used with, leaves that cached for the approval.
   */
  private async importKeys(): Promise<void> {
    for (const jwk of this.jwks.jwks()?.keys ?? []) {
      const alg = jwk.alg ?? likelyAlgorithm(jwk);
      if (!alg) continue;
      await this.jwks({ alg, ...(jwk.kid === undefined ? {} : { kid: jwk.kid }) }).catch(() => undefined);
    }
  }

  /** @returns the verified claims. @throws IdTokenError */
  async verify(idToken: string | undefined): Promise<Claims> {
    if (!idToken) throw new IdTokenError("invalid_token", "the identity provider returned no ID token");
    try {
      const { payload } = await jwtVerify(idToken, this.jwks, {
        issuer: this.expectedIssuer(idToken),
        audience: this.options.audience,
        clockTolerance: this.options.clockToleranceSeconds,
        algorithms: ALGORITHMS,
        requiredClaims: ["sub", "exp", "iat"],
      });
      return { ...payload };
    } catch (error) {
      throw describe(error);
    }
  }

  private expectedIssuer(idToken: string): string {
    const issuer = this.options.issuer;
    if (!issuer.includes("{tenantid}")) return issuer;
    // Entra's /common and /organizations metadata names the issuer as a template; the signature check still
    // binds the token to the provider's keys, and `tid` only selects which tenant's issuer string to expect.
    const tid = safeDecode(idToken)?.["tid"];
    return typeof tid === "string" ? issuer.replace("{tenantid}", tid) : issuer;
  }
}

/** The algorithm a key without `alg` signs with: Entra's keys name none and sign ID tokens with RS256. */
function likelyAlgorithm(jwk: JWK): string | undefined {
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "OKP") return "EdDSA";
  if (jwk.kty === "EC") return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[jwk.crv ?? ""];
  return undefined;
}

function safeDecode(token: string): Record<string, unknown> | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

function describe(error: unknown): IdTokenError {
  if (error instanceof IdpUnreachableError)
    return new IdTokenError("network", `signing keys unreachable: ${error.message}`, { cause: error });
  if (error instanceof errors.JWKSTimeout)
    return new IdTokenError("network", "signing keys unreachable: timed out", { cause: error });
  if (
    error instanceof errors.JWKSInvalid ||
    (error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC")
  )
    return new IdTokenError("server", `signing keys unusable: ${error.message}`, { cause: error });
  if (error instanceof errors.JOSEError)
    return new IdTokenError(
      "invalid_token",
      `the ID token failed verification (${error.code}: ${error.message})`,
      {
        cause: error,
      },
    );
  const message = error instanceof Error ? error.message : String(error);
  return new IdTokenError("server", `ID token verification failed: ${message}`, { cause: error });
}
