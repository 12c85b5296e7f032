import {
  createLocalJWKSet,
  decodeJwt,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from "jose";
import type { Claims } from "../events.js";
import { IdpUnreachableError } from "./network-client.js";
import { ResponseTooLargeError } from "../http/bounded-body.js";

/** Asymmetric algorithms only: a public JWKS can never vouch for a MAC, and `none` is no signature. */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export interface IdTokenVerifierOptions {
  /** `issuer` of the discovery document; Entra's multi-tenant `{tenantid}` placeholder is filled from `tid`. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** The client id: the only audience this device accepts. */
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  /** GETs a JSON document with the identity provider's CAs, proxy and timeouts (NetworkClient.getJson). */
  readonly getJson: (url: string) => Promise<{ status: number; body: unknown }>;
  /** The time to judge `iat`, `nbf` and `exp` by (the provider's clock, see ProviderClock); the device's by default. */
  readonly now?: () => Date;
}

/** jose's claim names for the time checks: a failure there says more about a clock than about the token. */
const TIME_CLAIMS = new Set(["iat", "nbf", "exp"]);

/** Keys are fetched again after this long, as jose's remote key set would. */
const KEYS_MAX_AGE_MS = 10 * 60_000;
/** A token naming an unknown key fetches the keys again, but not more often than this. */
const KEYS_COOLDOWN_MS = 30_000;

/** Why an ID token was not accepted: `invalid_token` (forged, expired, wrong audience...) or the JWKS was unreachable. */
export class IdTokenError extends Error {
  override readonly name = "IdTokenError";
  constructor(
    readonly reason: "invalid_token" | "network" | "server",
    message: string,
    options?: { cause?: unknown },
    /** Only a time claim (`iat`, `nbf`, `exp`) failed: signature, issuer and audience were fine. */
    readonly timeClaim = false,
  ) {
    super(message, options);
  }
}

/**
 * The provider's signing keys, fetched through the agent's network client and held in jose's local key set;
 * fetched again when a token names a key the set does not hold (the provider rotated its keys), at most every
 * 30 s. (jose's remote key set would do the same over the global fetch, which loads a second HTTP stack into
 * the process: ~30 ms and several MiB on a small device.)
 */
class SigningKeys {
  private local: ReturnType<typeof createLocalJWKSet> = createLocalJWKSet({ keys: [] });
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    private readonly getJson: IdTokenVerifierOptions["getJson"],
  ) {}

  get fresh(): boolean {
    return Date.now() - this.fetchedAt < KEYS_MAX_AGE_MS;
  }

  get keys(): readonly JWK[] {
    return this.local.jwks().keys;
  }

  /** One fetch at a time; callers during a fetch share it. */
  reload(): Promise<void> {
    this.pending ??= this.fetch().finally(() => (this.pending = undefined));
    return this.pending;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.fresh) await this.reload();
    try {
      return await this.local(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - this.fetchedAt < KEYS_COOLDOWN_MS)
        throw error;
      await this.reload();
      return this.local(header, token);
    }
  };

  /** Imports the key this header names into WebCrypto now; jose caches it. Failures are left to `getKey`. */
  async warm(header: { alg: string; kid?: string }): Promise<void> {
    await this.local(header).catch(() => undefined);
  }

  private async fetch(): Promise<void> {
    const { status, body } = await this.getJson(this.url);
    if (status !== 200)
      throw new IdTokenError(
        "server",
        `signing keys unusable: HTTP ${status} from ${new URL(this.url).origin}`,
      );
    this.local = createLocalJWKSet(body as JSONWebKeySet);
    this.fetchedAt = Date.now();
  }
}

/**
 * Checks an ID token before anyone trusts its claims: MSAL decodes ID tokens but never checks their signature.
 */
export class IdTokenVerifier {
  private readonly keys: SigningKeys;

  constructor(private readonly options: IdTokenVerifierOptions) {
    this.keys = new SigningKeys(options.jwksUri, options.getJson);
  }

  /**
   * Fetches the signing keys ahead of need, while a code is on screen and the person is busy with it, so
   * the ID token that arrives on approval is checked without a round trip. A failure here costs nothing:
   * `verify` fetches again.
   */
  prefetch(): void {
    if (this.keys.fresh) return;
    this.keys
      .reload()
      .then(() => this.importKeys())
      .catch(() => undefined);
  }

  /**
   * jose turns a JWK into a WebCrypto key on its first use (~3 ms, and the first use loads WebCrypto itself);
   * asking for each key now, with the algorithm it will be used with, leaves that cached for the approval.
   */
  private async importKeys(): Promise<void> {
    for (const jwk of this.keys.keys) {
      const alg = jwk.alg ?? likelyAlgorithm(jwk);
      if (!alg) continue;
      await this.keys.warm({ alg, ...(jwk.kid === undefined ? {} : { kid: jwk.kid }) });
    }
  }

  /**
   * Checks signature, issuer and audience strictly, and the time claims against `options.now` (the provider's
   * clock when the device's disagrees). @returns the verified claims. @throws IdTokenError
   */
  async verify(idToken: string | undefined): Promise<Claims> {
    return this.check(idToken, this.options.now?.() ?? new Date());
  }

  /**
   * Checks an ID token issued earlier (the one a refresh without a new ID token leaves standing): signature,
   * issuer and audience as strictly as {@link verify}, the time claims at the token's own `iat`, since its
   * lifetime has passed by design. @throws IdTokenError
   */
  async verifyEarlier(idToken: string): Promise<Claims> {
    const iat = safeDecode(idToken)?.["iat"];
    if (typeof iat !== "number") throw new IdTokenError("invalid_token", "the earlier ID token has no iat");
    return this.check(idToken, new Date(iat * 1000));
  }

  private async check(idToken: string | undefined, currentDate: Date): Promise<Claims> {
    if (!idToken) throw new IdTokenError("invalid_token", "the identity provider returned no ID token");
    try {
      const { payload } = await jwtVerify(idToken, this.keys.getKey, {
        issuer: this.expectedIssuer(idToken),
        audience: this.options.audience,
        clockTolerance: this.options.clockToleranceSeconds,
        algorithms: ALGORITHMS,
        requiredClaims: ["sub", "exp", "iat"],
        currentDate,
      });
      this.checkAuthorizedParty(payload.aud, payload["azp"]);
      return withoutPrototypeKeys(payload) as Claims;
    } catch (error) {
      throw describe(error);
    }
  }

  /**
   * OpenID Connect Core 1.0, 3.1.3.7 (points 4 and 5): a token for several audiences must name this client as
   * its authorized party (`azp`), and an `azp` that is present must be this client. jose checks only that the
   * client is among the audiences: a token issued to another client, with this one as a second audience, passed.
   */
  private checkAuthorizedParty(aud: string | string[] | undefined, azp: unknown): void {
    const several = Array.isArray(aud) && aud.length > 1;
    if (azp === undefined && !several) return;
    if (azp !== this.options.audience)
      throw new IdTokenError(
        "invalid_token",
        azp === undefined
          ? "the ID token names several audiences but no authorized party (azp); OpenID Connect Core 3.1.3.7 requires one"
          : "the ID token's authorized party (azp) is not this client",
      );
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

/** Keys that change an object's prototype or constructor when a consumer merges or assigns the claims. */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * A copy of a JSON value without `__proto__`, `constructor` and `prototype` keys, at every depth: claims go on to
 * events, webhooks and library consumers, any of which may merge them into an object of their own.
 */
export function withoutPrototypeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutPrototypeKeys);
  if (value === null || typeof value !== "object") return value;
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (PROTOTYPE_KEYS.has(key)) continue;
    copy[key] = withoutPrototypeKeys(child);
  }
  return copy;
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
  if (error instanceof IdTokenError) return error;
  if (error instanceof IdpUnreachableError)
    return new IdTokenError("network", `signing keys unreachable: ${error.message}`, { cause: error });
  if (error instanceof ResponseTooLargeError)
    return new IdTokenError("server", `signing keys unusable: ${error.message}`, { cause: error });
  // The keys come through the network client (IdpUnreachableError, or IdTokenError for an error page);
  // a document that is not a key set is jose's JWKSInvalid.
  if (error instanceof errors.JWKSInvalid)
    return new IdTokenError("server", `signing keys unusable: ${error.message}`, { cause: error });
  if (error instanceof errors.JOSEError) {
    // `exp` passed (JWTExpired), or `nbf`/`iat` refused (JWTClaimValidationFailed naming the claim).
    const timeClaim =
      error instanceof errors.JWTExpired ||
      (error instanceof errors.JWTClaimValidationFailed && TIME_CLAIMS.has(error.claim));
    return new IdTokenError(
      "invalid_token",
      `the ID token failed verification (${error.code}: ${error.message})`,
      { cause: error },
      timeClaim,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new IdTokenError("server", `ID token verification failed: ${message}`, { cause: error });
}
