import {
  AuthError,
  PublicClientApplication,
  type DeviceCodeRequest,
  type AccountInfo,
} from "@azure/msal-node";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { AccountSummary, Claims, FailureReason, SignInPrompt } from "../events.js";
import { resolveAuthority, type ResolvedAuthority } from "./authority.js";
import { discover } from "./discovery.js";
import { IdpUnreachableError, NetworkClient } from "./network-client.js";
import { Rfc8628NetworkModule } from "./rfc8628.js";

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

export interface SignInResult {
  readonly claims: Claims;
  readonly account: AccountSummary;
}

/**
 * The device authorization grant through MSAL Node. Only this module talks to MSAL; its errors are
 * translated here into `SignInError` reasons, so the agent's state machine never sees MSAL's codes.
 */
export class DeviceCodeSignIn {
  readonly authority: ResolvedAuthority;
  private readonly http: NetworkClient;
  private client: PublicClientApplication | undefined;
  /** MSAL's Entra dialect translated to RFC 8628, for providers other than Entra and External ID. */
  private rfc8628: Rfc8628NetworkModule | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.authority = resolveAuthority(config.authority, config.verificationUri);
    this.http = new NetworkClient({ ca: config.idpCa, timeoutMs: config.httpTimeoutMs });
  }

  /** Fetches the provider's metadata (or reads it from the state directory) and builds the MSAL client. */
  async prepare(): Promise<void> {
    if (this.client) return;
    const discovery = await discover(this.authority.discoveryUrl, this.http, this.config.stateDir);
    this.log.debug(
      { source: discovery.source, issuer: discovery.document.issuer },
      "authority metadata ready",
    );
    const hosts = new Set([new URL(this.authority.url).host, new URL(discovery.document.issuer).host]);
    if (this.authority.kind === "oidc") {
      this.rfc8628 ??= Rfc8628NetworkModule.fromDiscovery(this.http, discovery.document, { log: this.log });
    }
    this.client = new PublicClientApplication({
      auth: {
        clientId: this.config.clientId,
        authority: this.authority.url,
        knownAuthorities: [...hosts],
        authorityMetadata: JSON.stringify(discovery.document),
      },
      system: {
        networkClient: this.rfc8628 ?? this.http,
        // Entra and External ID keep MSAL's default; any other provider needs plain OpenID Connect.
        ...(this.authority.kind === "oidc" ? { protocolMode: "OIDC" as const } : {}),
        loggerOptions: { piiLoggingEnabled: false, logLevel: 0, loggerCallback: () => undefined },
      },
    });
  }

  /**
   * Runs one device-code flow: `onPrompt` receives the code to show; resolves when the person signed in.
   * Aborting `signal` ends the wait at once (MSAL itself only notices at its next poll).
   */
  async signIn(signal: AbortSignal, onPrompt: (prompt: SignInPrompt) => void): Promise<SignInResult> {
    const request: DeviceCodeRequest = {
      scopes: [...this.config.scopes],
      deviceCodeCallback: (response) => {
        const issuedAt = new Date();
        const verificationUri = this.authority.verificationUri ?? response.verificationUri;
        // MSAL drops verification_uri_complete; the RFC 8628 translation kept it.
        const complete = this.rfc8628?.takeVerificationUriComplete(response.userCode);
        onPrompt({
          userCode: response.userCode,
          verificationUri,
          ...(complete && {
            verificationUriComplete: rewritePrefix(complete, response.verificationUri, verificationUri),
          }),
          message: rewriteMessage(
            response.message,
            response.verificationUri,
            verificationUri,
            response.userCode,
          ),
          issuedAt: issuedAt.toISOString(),
          expiresAt: new Date(issuedAt.getTime() + response.expiresIn * 1000).toISOString(),
          intervalSeconds: response.interval,
        });
      },
    };
    const cancelled = new Promise<never>((_, reject) => {
      const onAbort = () => {
        request.cancel = true;
        reject(new SignInError("cancelled", "sign-in cancelled"));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    cancelled.catch(() => undefined);
    try {
      const preparing = this.prepare();
      preparing.catch(() => undefined);
      await Promise.race([preparing, cancelled]);
      const client = this.client as PublicClientApplication;
      const flow = client.acquireTokenByDeviceCode(request);
      // After a cancel MSAL still rejects at its next poll; nobody awaits that any more.
      flow.catch(() => undefined);
      const result = await Promise.race([flow, cancelled]);
      if (!result) throw new SignInError("server", "the identity provider returned no result");
      return { claims: { ...(result.idTokenClaims as Claims) }, account: summarise(result.account) };
    } catch (error) {
      throw translate(error);
    }
  }

  async close(): Promise<void> {
    this.rfc8628?.close();
    await this.http.close();
  }
}

function summarise(account: AccountInfo | null): AccountSummary {
  return {
    username: account?.username ?? "",
    name: account?.name ?? "",
    tenantId: account?.tenantId ?? "",
    homeAccountId: account?.homeAccountId ?? "",
  };
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
): string {
  if (!message)
    return `To sign in, use a web browser to open the page ${shown} and enter the code ${userCode}.`;
  return original && original !== shown ? message.split(original).join(shown) : message;
}

const DECLINED = new Set(["authorization_declined", "access_denied"]);
const EXPIRED = new Set(["expired_token", "code_expired", "device_code_expired"]);

/** Maps MSAL's and the network's errors onto the few outcomes the agent acts on. */
export function translate(error: unknown): SignInError {
  if (error instanceof SignInError) return error;
  if (error instanceof IdpUnreachableError)
    return new SignInError("network", error.message, { cause: error });
  if (error instanceof AuthError) {
    const code = error.errorCode;
    const serverError = error.errorMessage.split(/[\s:]/)[0] ?? "";
    if (code === "device_code_polling_cancelled") return new SignInError("cancelled", "sign-in cancelled");
    if (EXPIRED.has(code) || EXPIRED.has(serverError))
      return new SignInError("expired", "the code expired before anyone used it", { cause: error });
    if (DECLINED.has(serverError))
      return new SignInError("declined", "the person declined the sign-in", { cause: error });
    if (code === "network_error" || code === "endpoints_resolution_error")
      return new SignInError("network", `identity provider unreachable (${code})`, { cause: error });
    return new SignInError(
      "server",
      `identity provider error: ${code}${serverError ? ` ${serverError}` : ""}`,
      {
        cause: error,
      },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SignInError("server", message, { cause: error });
}
