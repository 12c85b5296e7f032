import { matchLocale, translate as translateMessage } from "../i18n/translate.js";
import {
  PublicClientApplication,
  type AuthenticationResult,
  type AccountInfo,
  type ICachePlugin,
} from "@azure/msal-node";
import type { Logger } from "pino";
import type { Config, DeviceFlowDialect } from "../config/index.js";
import type { AccountSummary, Claims, SignInMethod, SignInPrompt } from "../events.js";
import { acquireAccessToken, AccessTokenError, type AccessToken } from "./access-token.js";
import { describedBy, discoveryCandidates, resolveAuthority, type ResolvedAuthority } from "./authority.js";
import { discover, type DiscoveryDocument } from "./discovery.js";
import { runDeviceFlow, type DeviceFlowOptions } from "./device-flow.js";
import type { DeviceAuthorization, TokenSet } from "./oauth-steps.js";
import { applyClaimsPolicy } from "./claims-policy.js";
import { IdTokenError, IdTokenVerifier } from "./id-token-verifier.js";
import { NetworkClient } from "./network-client.js";
import { ProviderClock } from "./provider-clock.js";
import {
  isRejection,
  rejectionCode,
  SessionRejectedError,
  SignInError,
  summarise,
  toSignInError,
  toSignInResult,
  type ClaimsCheck,
  type SignInResult,
} from "./sign-in-result.js";

export {
  SessionRejectedError,
  SignInError,
  toSignInError,
  toSignInResult,
  type ClaimsCheck,
  type SignInResult,
} from "./sign-in-result.js";

/** Scopes every sign-in asks for, as MSAL does: an ID token, the profile, and a refresh token. */
const BASE_SCOPES = ["openid", "profile", "offline_access"];
/** Tries at handing MSAL the refresh token of a new sign-in, before the sign-in counts as failed. */
const SEED_ATTEMPTS = 3;

/**
 * The person's session with the identity provider: the agent's own device flow (src/auth/device-flow.ts) gets
 * the tokens; MSAL Node keeps them (Entra and External ID authority rules, the token cache format, accounts,
 * silent renewal). MSAL only ever hears real provider answers: a new sign-in's refresh token reaches its cache
 * through its public `acquireTokenByRefreshToken`, which asks the provider itself. Errors become `SignInError`
 * reasons here, so the agent's state machine never sees MSAL's codes.
 */
export class IdentitySession {
  /** As configured until the discovery document is read; then as the document describes it (see describedBy). */
  private resolved: ResolvedAuthority;
  private readonly http: NetworkClient;
  private client: PublicClientApplication | undefined;
  private preparing: Promise<void> | undefined;
  private claimsCheck: ClaimsCheck | undefined;
  private flow: Omit<DeviceFlowOptions, "log"> | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    /** Where MSAL's token cache lives between runs; without one the session ends with the process. */
    private readonly cachePlugin?: ICachePlugin,
  ) {
    this.resolved = resolveAuthority(config.authority, config.verificationUri);
    this.http = new NetworkClient({
      ca: config.idpCa,
      timeoutMs: config.httpTimeoutMs,
      proxy: config.proxy,
      log: this.log.child({ module: "http" }),
      // A disagreement the verifier's own tolerance absorbs is not worth reporting.
      clock: new ProviderClock(Math.max(2_000, config.idTokenClockToleranceSeconds * 1000)),
    });
  }

  get authority(): ResolvedAuthority {
    return this.resolved;
  }

  /** The provider's clock minus the device's in seconds, while they disagree beyond the tolerance (see ProviderClock). */
  get clockSkewSeconds(): number | undefined {
    return this.http.clock.skewSeconds;
  }

  /** Ms until the provider may be called again after a `Retry-After` (0: now). */
  get quietForMs(): number {
    return this.http.quietForMs();
  }

  /**
   * The flow in progress was cancelled or signed out: tokens answering any request already sent are dropped
   * before they reach MSAL, the token cache or an event.
   */
  discardTokensInFlight(): void {
    this.http.discardTokensInFlight();
  }

  /**
   * Fetches the provider's metadata (or reads it from the state directory) and builds the MSAL client.
   * Concurrent callers share one attempt (the agent starts it while the broker connects); a failed attempt
   * is forgotten, so the next call tries again.
   */
  prepare(): Promise<void> {
    if (!this.preparing) {
      const attempt = this.build();
      this.preparing = attempt;
      attempt.catch(() => {
        if (this.preparing === attempt) this.preparing = undefined;
      });
    }
    return this.preparing;
  }

  private async build(): Promise<void> {
    if (this.client) return;
    const discovery = await discover(
      discoveryCandidates(this.resolved, this.config.deviceFlowDialect),
      this.http,
      this.config.stateDir,
      { log: this.log },
    );
    this.resolved = describedBy(this.resolved, discovery, this.config.verificationUri);
    this.log.debug(
      { source: discovery.source, issuer: discovery.document.issuer, kind: this.resolved.kind },
      "authority metadata ready",
    );
    const hosts = new Set([new URL(this.authority.url).host, new URL(discovery.document.issuer).host]);
    this.flow = {
      http: this.http,
      deviceAuthorizationEndpoint: deviceAuthorizationEndpoint(
        discovery.document,
        speaksRfc8628(this.config.deviceFlowDialect, this.authority.kind),
      ),
      tokenEndpoint: discovery.document.token_endpoint,
      client: {
        clientId: this.config.clientId,
        scopes: [...new Set([...BASE_SCOPES, ...this.config.scopes])],
      },
      retry: this.config.retry,
    };
    this.claimsCheck = {
      verifier: new IdTokenVerifier({
        issuer: discovery.document.issuer,
        jwksUri: discovery.document.jwks_uri,
        audience: this.config.clientId,
        clockToleranceSeconds: this.config.idTokenClockToleranceSeconds,
        getJson: (url) => this.http.getJson(url),
        // The provider stamped the token with its clock; a device clock that is hours off must not reject it.
        now: () => this.http.clock.now(),
      }),
      allowedClaims: this.config.claims,
      publishIdToken: this.config.publishIdToken,
    };
    this.client = new PublicClientApplication({
      auth: {
        clientId: this.config.clientId,
        authority: this.authority.url,
        knownAuthorities: [...hosts],
        authorityMetadata: JSON.stringify(discovery.document),
      },
      ...(this.cachePlugin ? { cache: { cachePlugin: this.cachePlugin } } : {}),
      system: {
        networkClient: this.http,
        // Entra and External ID keep MSAL's default; any other provider needs plain OpenID Connect.
        ...(this.authority.kind === "oidc" ? { protocolMode: "OIDC" as const } : {}),
        loggerOptions: { piiLoggingEnabled: false, logLevel: 0, loggerCallback: () => undefined },
      },
    });
  }

  /**
   * Runs one device flow: `onPrompt` receives the code to show; resolves when the person signed in, their ID
   * token verified and their session in MSAL's cache. Aborting `signal` ends the wait at once.
   */
  async signIn(signal: AbortSignal, onPrompt: (prompt: SignInPrompt) => void): Promise<SignInResult> {
    try {
      await abortable(this.prepare(), signal);
      const flow = runDeviceFlow({ ...(this.flow as DeviceFlowOptions), log: this.log }, signal, (code) => {
        this.claimsCheck?.verifier.prefetch();
        onPrompt(this.promptFor(code));
      });
      flow.catch(() => undefined);
      const tokens = await abortable(flow, signal);
      return await this.keep(tokens, signal);
    } catch (error) {
      throw toSignInError(error);
    }
  }

  private promptFor(code: DeviceAuthorization): SignInPrompt {
    const issuedAt = new Date();
    const verificationUri = this.authority.verificationUri ?? code.verificationUri;
    const complete = code.verificationUriComplete;
    return {
      userCode: code.userCode,
      verificationUri,
      ...(complete && {
        verificationUriComplete: rewritePrefix(complete, code.verificationUri, verificationUri),
      }),
      message: rewriteMessage(
        code.message,
        code.verificationUri,
        verificationUri,
        code.userCode,
        this.config.language,
      ),
      // For people only: the code's life is timed on the monotonic clock (src/auth/device-flow.ts).
      issuedAt: issuedAt.toISOString(),
      expiresAt: new Date(issuedAt.getTime() + code.expiresInSeconds * 1000).toISOString(),
      expiresIn: code.expiresInSeconds,
      intervalSeconds: code.intervalSeconds,
    };
  }

  /**
   * The device flow's tokens become a session: the ID token the provider sent is verified first (a refused one
   * leaves nothing behind), then MSAL is handed the refresh token the provider issued, through its public API;
   * it asks the provider for tokens and caches the answer, and that answer's account is the one reported.
   */
  private async keep(tokens: TokenSet, signal: AbortSignal): Promise<SignInResult> {
    const check = this.claimsCheck as ClaimsCheck;
    const claims = await check.verifier.verify(tokens.idToken);
    if (signal.aborted) throw new SignInError("cancelled", "sign-in cancelled");
    if (!tokens.refreshToken) {
      this.log.warn(
        "the identity provider issued no refresh token (is offline_access allowed for this client?): the session cannot be renewed or kept",
      );
      const { claims: kept, account } = applyClaimsPolicy(
        claims,
        accountFromClaims(claims),
        check.allowedClaims,
      );
      return {
        method: "device_code",
        claims: kept,
        account,
        verified: true,
        ...(check.publishIdToken && tokens.idToken ? { idToken: tokens.idToken } : {}),
      };
    }
    const client = this.client as PublicClientApplication;
    const epoch = this.http.epoch;
    let seeded: AuthenticationResult | null = null;
    for (let attempt = 1; ; attempt++) {
      // A provider that leaves the ID token out of refresh answers (OpenID Connect Core 12.2): the one it just
      // sent with these tokens stands for the account.
      this.http.standInIdToken = tokens.idToken;
      try {
        seeded = await abortable(
          client.acquireTokenByRefreshToken({
            refreshToken: tokens.refreshToken,
            scopes: [...this.config.scopes],
            forceCache: true,
          }),
          signal,
        );
        break;
      } catch (error) {
        const failure = toSignInError(error);
        if (attempt >= SEED_ATTEMPTS || !["network", "server"].includes(failure.reason) || signal.aborted)
          throw error;
        await abortable(delay(Math.max(1_000, this.http.quietForMs())), signal);
      } finally {
        this.http.standInIdToken = undefined;
      }
    }
    if (epoch !== this.http.epoch || signal.aborted) {
      if (seeded?.account)
        await client
          .getTokenCache()
          .removeAccount(seeded.account)
          .catch(() => undefined);
      throw new SignInError("cancelled", "sign-in cancelled");
    }
    return this.verified(seeded, "device_code");
  }

  /** The account in the token cache, if a person signed in earlier (on this run or a previous one). */
  async cachedAccount(): Promise<AccountSummary | undefined> {
    const account = await this.account();
    return account ? summarise(account) : undefined;
  }

  /**
   * Signs the cached account in again with its refresh token, always asking the provider (so a revoked
   * session is noticed, and an idle device's refresh token stays inside its inactivity limit).
   * @throws SessionRejectedError when the provider refuses the refresh token; SignInError for trouble that
   *   may pass (network, server), which must not sign anyone out.
   */
  async refresh(signal: AbortSignal): Promise<SignInResult> {
    try {
      await abortable(this.prepare(), signal);
      const account = await this.account();
      if (!account) throw new SessionRejectedError("no account in the token cache");
      const client = this.client as PublicClientApplication;
      this.http.standInIdToken = account.idToken;
      const silent = client.acquireTokenSilent({
        account,
        scopes: [...this.config.scopes],
        forceRefresh: true,
      });
      silent.catch(() => undefined);
      silent.finally(() => (this.http.standInIdToken = undefined)).catch(() => undefined);
      return await this.verified(await abortable(silent, signal), "refresh", account);
    } catch (error) {
      if (error instanceof SessionRejectedError) throw error;
      if (isRejection(error))
        throw new SessionRejectedError(
          `the identity provider rejected the session (${rejectionCode(error)})`,
          {
            cause: error,
          },
        );
      throw toSignInError(error);
    }
  }

  /**
   * The result, once its ID token checked out. MSAL has already cached the account by then: a token that fails
   * is removed from the cache too, or the next start would silently renew a session nobody proved. A renewal
   * whose token fails ends the session (SessionRejectedError), as a refused refresh token does.
   */
  private async verified(
    result: AuthenticationResult | null,
    method: SignInMethod,
    previous?: AccountInfo,
  ): Promise<SignInResult> {
    try {
      return await toSignInResult(result, method, this.claimsCheck as ClaimsCheck, previous);
    } catch (error) {
      if (!(error instanceof IdTokenError && error.reason === "invalid_token")) throw error;
      // A clock problem is no proof against the person: a saved session survives it, and is renewed again later.
      if (method === "refresh" && error.timeClaim) {
        this.log.warn(
          { clockSkewSeconds: this.clockSkewSeconds ?? 0 },
          `the renewed ID token's time claims failed even against the provider's clock; keeping the session: ${error.message}`,
        );
        throw new SignInError("invalid_token", error.message, { cause: error });
      }
      if (result?.account) {
        await this.client
          ?.getTokenCache()
          .removeAccount(result.account)
          .catch((cause: unknown) => this.log.warn({ err: cause }, "could not drop the unverified account"));
      }
      if (method === "refresh")
        throw new SessionRejectedError(`the renewed ID token failed verification: ${error.message}`, {
          cause: error,
        });
      throw error;
    }
  }

  /**
   * An access token for `scopes` of the person signed in now, for the device's apps (src/tokens/): never the
   * refresh token or the ID token. Throws AccessTokenError (`signed_out` when nobody is).
   */
  async accessToken(scopes: readonly string[]): Promise<AccessToken> {
    try {
      await this.prepare();
    } catch (error) {
      throw new AccessTokenError("unavailable", "the identity provider could not be reached for a token", {
        cause: error,
      });
    }
    const account = await this.account();
    if (!account) throw new AccessTokenError("signed_out", "nobody is signed in on this device");
    return acquireAccessToken(this.client as PublicClientApplication, account, scopes);
  }

  /** Forgets the cached account and its tokens (the cache plugin writes the file). */
  async signOut(): Promise<void> {
    await this.prepare();
    const client = this.client as PublicClientApplication;
    const cache = client.getTokenCache();
    for (const account of await cache.getAllAccounts()) await cache.removeAccount(account);
  }

  private async account(): Promise<AccountInfo | undefined> {
    await this.prepare();
    const accounts = await (this.client as PublicClientApplication).getTokenCache().getAllAccounts();
    return accounts[0];
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/**
 * Where the device flow starts: the discovery document's `device_authorization_endpoint` (RFC 8414); for Entra
 * and External ID, whose documents may name none, the token endpoint's sibling `devicecode`, as MSAL derives it.
 */
function deviceAuthorizationEndpoint(document: DiscoveryDocument, rfc8628: boolean): string {
  if (document.device_authorization_endpoint) return document.device_authorization_endpoint;
  if (rfc8628)
    throw new SignInError(
      "server",
      "the identity provider's discovery document has no device_authorization_endpoint: " +
        "it does not offer the device authorization grant (RFC 8628), or not to this client",
    );
  return document.token_endpoint.replace("/token", "/devicecode");
}

function accountFromClaims(claims: Claims): AccountSummary {
  const text = (name: string) => (typeof claims[name] === "string" ? claims[name] : "");
  return {
    username: text("preferred_username") || text("email") || text("upn"),
    name: text("name"),
    tenantId: text("tid"),
    homeAccountId: text("oid") || text("sub"),
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new SignInError("cancelled", "cancelled"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new SignInError("cancelled", "cancelled"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** A complete URI on the provider's page follows the page shown instead (EDGE_SIGNIN_VERIFICATION_URI). */
function rewritePrefix(uri: string, original: string, shown: string): string {
  return original && original !== shown && uri.startsWith(original)
    ? shown + uri.slice(original.length)
    : uri;
}

function rewriteMessage(
  message: string | undefined,
  original: string,
  shown: string,
  userCode: string,
  language: string,
): string {
  // RFC 8628 providers send no message: ours, in DISPLAY_LANGUAGE (English for `auto`: no browser to ask).
  if (!message)
    return translateMessage(matchLocale(language) ?? "en", "promptMessage", { url: shown, code: userCode });
  return original && original !== shown ? message.split(original).join(shown) : message;
}

/** Microsoft's hosts speak Entra's dialect, which MSAL speaks natively; every other provider RFC 8628. */
function speaksRfc8628(dialect: DeviceFlowDialect, kind: ResolvedAuthority["kind"]): boolean {
  return dialect === "rfc8628" || (dialect === "auto" && kind === "oidc");
}
