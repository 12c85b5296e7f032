import { createPrivateKey, generateKeyPair, randomUUID, type JsonWebKey } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import Provider from "oidc-provider";
import type { Adapter, AdapterPayload, Configuration, JWK, KoaContextWithOIDC } from "oidc-provider";
import { generate } from "selfsigned";
import { decodeJwt, decodeProtectedHeader, SignJWT } from "jose";

export interface DevIdentityProviderOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /**
   * Address to listen on. Default 127.0.0.1; `0.0.0.0` inside a container that others reach by name; another
   * loopback address (`127.0.0.2`) to stand for a second host name: the authority then carries it, and so does
   * the certificate.
   */
  host?: string;
  /**
   * The host name clients reach the provider by, when not this machine's loopback (a compose service name).
   * Then the authority and the issuer both carry it, and so does the certificate. Default: none (authority
   * `https://localhost:{port}/`, issuer `https://127.0.0.1:{port}`).
   */
  publicHost?: string;
  /** Public client id registered in the provider. Default "edge-signin-dev". */
  clientId?: string;
  /** Device code lifetime in seconds. Default 600. */
  deviceCodeTtlSeconds?: number;
  /** Lifetime of access tokens, in seconds. Default 3600. */
  accessTokenTtlSeconds?: number;
  /** `interval` added to the device authorization response (Entra always sends one). Default 5. Entra dialect only. */
  pollIntervalSeconds?: number;
  /**
   * `"entra"` (default) emulates Entra's dialect of the device flow in front of oidc-provider: Entra's routes
   * (`/oauth2/v2.0/token`, `/oauth2/v2.0/devicecode`), the short grant type accepted, `interval` and `message`
   * added. `"rfc8628"` runs oidc-provider as it ships: default routes (`/token`, `/device/auth`), the RFC's
   * grant type only, no `interval` or `message`, no request or response rewritten.
   */
  dialect?: "entra" | "rfc8628";
  /** Directory to write the generated CA/cert PEM into. Default: a fresh temp dir. */
  certDir?: string;
  /** Issue faulty ID tokens from the start (see {@link DevIdentityProvider.setIdTokenFault}). */
  idTokenFault?: IdTokenFault;
  /** The provider's clock runs this many seconds off the machine's from the start (see {@link DevIdentityProvider.setClockOffset}). */
  clockOffsetSeconds?: number;
  /** Leave `id_token` out of refresh-token responses from the start (see {@link DevIdentityProvider.setOmitIdTokenOnRefresh}). */
  omitIdTokenOnRefresh?: boolean;
  /**
   * Emulates this Microsoft Entra External ID tenant (its id, a GUID) reached through a custom URL domain, as
   * Entra serves one: the authority is `https://{host}/{tenantId}/`, the v2.0 document at
   * `/{tenantId}/v2.0/.well-known/openid-configuration` names endpoints on the host it was asked on (`/{tenantId}/oauth2/v2.0/...`)
   * but the issuer `https://{tenantId}.ciamlogin.com/{tenantId}/v2.0`; ID tokens carry that issuer and `tid`; the
   * code page is `/common/oauth2/deviceauth`. Beside it, Entra's v1 document (`/{tenantId}/.well-known/openid-configuration`,
   * issuer `https://sts.windows.net/{tenantId}/`) and a v1 `/{tenantId}/oauth2/devicecode` that refuses v2 requests
   * (AADSTS900144, no `resource`). Entra dialect only.
   */
  externalIdTenantId?: string;
  /** ID tokens carry this many group ids from the start (see {@link DevIdentityProvider.setIdTokenGroups}). */
  idTokenGroups?: number;
}

export interface DevIdentityProvider {
  /** Authority to hand to the agent: `https://localhost:{port}/` (`https://{publicHost}:{port}/` with one). */
  readonly authority: string;
  /** Issuer in the discovery document and ID tokens: `https://127.0.0.1:{port}`, a different host from the authority on purpose (External ID names its issuer by tenant GUID host); `https://{publicHost}:{port}` with one. */
  readonly issuer: string;
  readonly clientId: string;
  /** PEM of the self-signed certificate the server uses (DNS localhost and `publicHost`, IP 127.0.0.1), to trust it. */
  readonly caPem: string;
  /** Path of a file holding caPem, suitable for NODE_EXTRA_CA_CERTS. */
  readonly caFile: string;
  /** Count of token-endpoint requests seen so far (for tests). */
  tokenRequests(): number;
  /** Test hook: forgets every refresh token issued so far, so refreshing with one gets `invalid_grant`. */
  revokeRefreshTokens(): void;
  /**
   * Benchmark hook: marks the code as approved by `login`, as the provider's own pages would after a login
   * and consent, without the HTML journey. Lets a benchmark approve hundreds of codes at one instant.
   * Rejects when no valid, unused code matches.
   */
  approve(userCode: string, login: string): Promise<void>;
  /**
   * Benchmark hook: `listener` hears of every token-endpoint response once it has been handed to the OS,
   * with `performance.now()` of that moment. Returns the unsubscribe.
   */
  onTokenResponse(listener: (response: TokenResponseInfo) => void): () => void;
  /** Benchmark hook: TLS connections clients have opened to the provider so far (each one a handshake). */
  tlsConnections(): number;
  /**
   * Test hook: from now on the token endpoint hands out ID tokens that a careful client must refuse:
   * `forged` is signed by a key that is not in the provider's JWKS (under the real key's `kid`), `expired`
   * is signed by the real key but expired an hour ago. `undefined` goes back to honest tokens.
   */
  setIdTokenFault(fault: IdTokenFault | undefined): void;
  /**
   * Test hook: the provider's clock runs `seconds` off the machine's (negative: behind). Every response's `Date`
   * header and every ID token's time claims (`iat`, `exp`, `nbf`, `auth_time`; `nbf` added as Entra's tokens
   * carry it) follow that clock, exactly what a device whose own clock is off by `-seconds` sees from an honest
   * provider.
   */
  setClockOffset(seconds: number): void;
  /** Test hook: refresh-token responses carry no `id_token` (OpenID Connect Core 12.2 allows it). */
  setOmitIdTokenOnRefresh(omit: boolean): void;
  /**
   * Test hook: every ID token from now on carries a `groups` claim of `count` group ids (GUIDs, 36 characters
   * each), as a provider without Entra's overage limit issues for a person in that many groups: 40,000 make an ID
   * token of about 2 MB. 0 goes back to none.
   */
  setIdTokenGroups(count: number): void;
  /**
   * Test hook: successful token responses (tokens in them) are held back, not sent, until the returned
   * `release()`; `held` resolves when the first one is waiting. One hold at a time.
   */
  holdTokenResponses(): { readonly held: Promise<void>; release(): void };
  /**
   * Test hook: the next `count` requests whose grant type is `grantType` (`refresh_token`, `device_code`...; `*`
   * for every request to the provider) are answered 503 `temporarily_unavailable` with `Retry-After: seconds`.
   * A `count` of 0 takes back the failures still due for that grant type.
   */
  failWithRetryAfter(grantType: string, seconds: number, count: number): void;
  /** Requests seen so far, by kind: a token request's grant type as the client sent it, `device_authorization`, or `GET {path}`. */
  requestCount(kind: string): number;
  close(): Promise<void>;
}

export interface TokenResponseInfo {
  readonly status: number;
  /** The grant type as the client sent it (`device_code` from MSAL, `refresh_token`, ...). */
  readonly grantType: string;
  /** `performance.now()` when the last byte of the response was written. */
  readonly sentAt: number;
}

// MSAL derives the device code URL from token_endpoint by replacing /token with /devicecode.
const TOKEN_PATH = "/oauth2/v2.0/token";
const DISCOVERY_PATH = "/.well-known/openid-configuration";
const SCOPES = ["openid", "profile", "email", "offline_access"];

export async function startDevIdentityProvider(
  options: DevIdentityProviderOptions = {},
): Promise<DevIdentityProvider> {
  const clientId = options.clientId ?? "edge-signin-dev";
  const interval = options.pollIntervalSeconds ?? 5;
  const listenHost = options.host ?? "127.0.0.1";
  // A second loopback address stands for a second host name: clients reach the provider by it.
  const ownHost = isIP(listenHost) !== 0 && !["127.0.0.1", "0.0.0.0", "::"].includes(listenHost);
  const authorityHost = options.publicHost ?? (ownHost ? listenHost : "localhost");
  const [tls, jwk] = await Promise.all([
    generateCertificate(options.publicHost, ownHost ? listenHost : undefined),
    generateSigningKey(),
  ]);
  const ownsCertDir = options.certDir === undefined;
  const certDir = options.certDir ?? (await mkdtemp(join(tmpdir(), "edge-signin-idp-")));
  await mkdir(certDir, { recursive: true });
  const caFile = join(certDir, "dev-idp-ca.pem");
  await writeFile(caFile, tls.cert);

  // The issuer embeds the port, so listen before the Provider exists and plug it in afterwards.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
  const server = createServer({ key: tls.private, cert: tls.cert }, (req, res) => handle(req, res));
  let tlsConnections = 0;
  server.on("secureConnection", () => (tlsConnections += 1));
  const port = await listen(server, options.port ?? 0, listenHost);
  const tenantId = options.externalIdTenantId;
  const issuer = tenantId
    ? `https://${tenantId}.ciamlogin.com/${tenantId}/v2.0`
    : `https://${options.publicHost ?? "127.0.0.1"}:${port}`;
  const authority = `https://${authorityHost}:${port}/${tenantId ? `${tenantId}/` : ""}`;
  const tenantPrefix = tenantId ? `/${tenantId}` : "";
  const tokenPath = `${tenantPrefix}${TOKEN_PATH}`;

  const entra = (options.dialect ?? "entra") === "entra";
  if (tenantId && !entra) throw new Error("externalIdTenantId emulates Entra: only with the entra dialect");
  // Kept here so tests can revoke what the provider issued.
  const store = new Map<string, AdapterPayload>();
  const provider = new Provider(issuer, {
    ...configuration(
      clientId,
      options.deviceCodeTtlSeconds ?? 600,
      jwk,
      entra,
      tenantId,
      options.accessTokenTtlSeconds ?? 3600,
    ),
    adapter: memoryAdapter(store),
  });
  if (entra) {
    provider.use(async (ctx, next) => {
      await next();
      addEntraDeviceFields(ctx as KoaContextWithOIDC, interval);
    });
  }

  let idTokenFault = options.idTokenFault;
  let clockOffsetSeconds = options.clockOffsetSeconds ?? 0;
  let omitIdTokenOnRefresh = options.omitIdTokenOnRefresh ?? false;
  let idTokenGroups = options.idTokenGroups ?? 0;
  let hold: { held: () => void; gate: Promise<void> } | undefined;
  provider.use(async (ctx, next) => {
    await next();
    const oidc = ctx as KoaContextWithOIDC;
    if (idTokenGroups > 0) await addGroups(oidc, idTokenGroups, jwk);
    if (idTokenFault) await spoilIdToken(oidc, idTokenFault, jwk);
    if (clockOffsetSeconds !== 0) await restampIdToken(oidc, clockOffsetSeconds, jwk);
    if (omitIdTokenOnRefresh) omitRefreshIdToken(oidc);
    const body = ctx.body as Record<string, unknown> | undefined;
    if (hold && oidc.oidc?.route === "token" && ctx.status === 200 && body?.access_token) {
      const { held, gate } = hold;
      held();
      await gate;
    }
  });

  let tokenRequests = 0;
  const counts = new Map<string, number>();
  const count = (kind: string) => counts.set(kind, (counts.get(kind) ?? 0) + 1);
  const unavailable: Array<{ grantType: string; seconds: number }> = [];
  const tokenListeners = new Set<(response: TokenResponseInfo) => void>();
  const plainCallback = provider.callback();
  /** Counts the request, fails it when told to (failWithRetryAfter), else hands it to oidc-provider. */
  const callback = async (req: IncomingMessage & { body?: string }, res: ServerResponse) => {
    if (clockOffsetSeconds !== 0)
      res.setHeader("Date", new Date(Date.now() + clockOffsetSeconds * 1000).toUTCString());
    const path = new URL(req.url ?? "/", issuer).pathname;
    let kind = `${req.method ?? "GET"} ${path}`;
    if (req.method === "POST" && /token$/.test(path)) {
      req.body ??= await readBody(req);
      kind = new URLSearchParams(req.body).get("grant_type") ?? "";
    } else if (req.method === "POST" && /v2\.0\/devicecode$|device\/auth$/.test(path))
      kind = "device_authorization";
    count(kind);
    if (tenantId) {
      const answered = answerAsEntraTenant(req, res, path, tenantId);
      if (answered) return;
    }
    const failing = unavailable.findIndex((f) => f.grantType === "*" || f.grantType === kind);
    if (failing >= 0) {
      const [fault] = unavailable.splice(failing, 1);
      res.writeHead(503, { "content-type": "application/json", "retry-after": String(fault?.seconds ?? 1) });
      res.end(JSON.stringify({ error: "temporarily_unavailable", error_description: "try again later" }));
      return;
    }
    await plainCallback(req, res);
  };
  handle = (req, res) => {
    if (!entra) {
      // As it ships: count token requests (for tests), touch nothing.
      if (req.method === "POST" && new URL(req.url ?? "/", issuer).pathname === "/token") tokenRequests += 1;
      void callback(req, res);
      return;
    }
    if (req.method !== "POST" || new URL(req.url ?? "/", issuer).pathname !== tokenPath) {
      void callback(req, res);
      return;
    }
    tokenRequests += 1;
    readBody(req).then(
      (body) => {
        // MSAL posts Entra's short grant type; oidc-provider only knows the RFC 8628 URN.
        const form = new URLSearchParams(body);
        const grantType = form.get("grant_type") ?? "";
        if (tokenListeners.size > 0) {
          res.once("finish", () => {
            const info: TokenResponseInfo = { status: res.statusCode, grantType, sentAt: performance.now() };
            for (const listener of tokenListeners) listener(info);
          });
        }
        if (grantType === "device_code") {
          form.set("grant_type", "urn:ietf:params:oauth:grant-type:device_code");
        }
        // oidc-provider falls back to a pre-read req.body once the stream has been consumed.
        (req as IncomingMessage & { body?: string }).body = form.toString();
        void callback(req, res);
      },
      () => res.writeHead(400).end(),
    );
  };

  return {
    authority,
    issuer,
    clientId,
    caPem: tls.cert,
    caFile,
    tokenRequests: () => tokenRequests,
    revokeRefreshTokens: () => {
      for (const key of [...store.keys()]) if (key.startsWith("RefreshToken:")) store.delete(key);
    },
    setIdTokenFault: (fault) => {
      idTokenFault = fault;
    },
    approve: (userCode, login) => approveDeviceCode(provider, clientId, userCode, login),
    tlsConnections: () => tlsConnections,
    setClockOffset: (seconds) => {
      clockOffsetSeconds = seconds;
    },
    setOmitIdTokenOnRefresh: (omit) => {
      omitIdTokenOnRefresh = omit;
    },
    setIdTokenGroups: (count) => {
      idTokenGroups = count;
    },
    holdTokenResponses: () => {
      let held = () => undefined as void;
      let release = () => undefined as void;
      const heldPromise = new Promise<void>((resolve) => (held = resolve));
      const gate = new Promise<void>((resolve) => (release = resolve));
      hold = { held, gate };
      return {
        held: heldPromise,
        release: () => {
          hold = undefined;
          release();
        },
      };
    },
    failWithRetryAfter: (grantType, seconds, times) => {
      if (times === 0)
        for (let i = unavailable.length - 1; i >= 0; i--)
          if (unavailable[i]?.grantType === grantType) unavailable.splice(i, 1);
      for (let i = 0; i < times; i++) unavailable.push({ grantType, seconds });
    },
    requestCount: (kind) => counts.get(kind) ?? 0,
    onTokenResponse: (listener) => {
      tokenListeners.add(listener);
      return () => tokenListeners.delete(listener);
    },
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      if (ownsCertDir) await rm(certDir, { recursive: true, force: true });
    },
  };
}

/**
 * What the provider's device pages do once a person has logged in and consented (oidc-provider's
 * `deviceVerificationResponse`): a grant for the client, and the device code bound to the account.
 */
async function approveDeviceCode(
  provider: Provider,
  clientId: string,
  userCode: string,
  login: string,
): Promise<void> {
  // oidc-provider stores user codes upper-case without separators, as its input page normalises them.
  const normalized = userCode.toUpperCase().replace(/\W/g, "");
  const code = await provider.DeviceCode.findByUserCode(normalized);
  if (!code || code.accountId || code.error) throw new Error(`no pending device code ${userCode}`);
  const grant = new provider.Grant({ clientId, accountId: login });
  const requested = typeof code.params?.["scope"] === "string" ? code.params["scope"].split(" ") : ["openid"];
  grant.addOIDCScope(requested.filter((scope) => SCOPES.includes(scope)).join(" "));
  const grantId = await grant.save();
  Object.assign(code, {
    accountId: login,
    authTime: Math.floor(Date.now() / 1000),
    grantId,
    scope: requested.filter((scope) => SCOPES.includes(scope)).join(" "),
    sessionUid: randomUUID(),
  });
  await code.save();
}

function configuration(
  clientId: string,
  deviceCodeTtl: number,
  jwk: JWK,
  entra: boolean,
  tenantId: string | undefined,
  accessTokenTtl: number,
): Configuration {
  const prefix = tenantId ? `/${tenantId}` : "";
  return {
    adapter: memoryAdapter(),
    jwks: { keys: [jwk] },
    clients: [
      {
        client_id: clientId,
        token_endpoint_auth_method: "none",
        grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        response_types: [],
        redirect_uris: [],
      },
    ],
    ...(entra && {
      routes: {
        token: `${prefix}${TOKEN_PATH}`,
        device_authorization: `${prefix}/oauth2/v2.0/devicecode`,
        ...(tenantId && {
          authorization: `${prefix}/oauth2/v2.0/authorize`,
          jwks: `${prefix}/discovery/v2.0/keys`,
          end_session: `${prefix}/oauth2/v2.0/logout`,
          // External ID's local accounts sign in on the tenant's own code page (AADSTS500208 on microsoft.com/devicelogin).
          code_verification: "/common/oauth2/deviceauth",
        }),
      },
    }),
    scopes: SCOPES,
    claims: {
      openid: tenantId ? ["sub", "tid"] : ["sub"],
      profile: ["name", "preferred_username"],
      email: ["email"],
    },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true, userCodeInputSource, userCodeConfirmSource, successSource },
    },
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({
        sub,
        name: sub.charAt(0).toUpperCase() + sub.slice(1),
        email: `${sub}@example.com`,
        preferred_username: `${sub}@example.com`,
        ...(tenantId && { tid: tenantId }),
      }),
    }),
    loadExistingGrant,
    // Explicit lifetimes and pages, because oidc-provider prints a notice for every default it falls back on.
    ttl: {
      DeviceCode: deviceCodeTtl,
      AccessToken: accessTokenTtl,
      IdToken: 3600,
      RefreshToken: 14 * 86400,
      Interaction: 3600,
      Session: 14 * 86400,
      Grant: 14 * 86400,
    },
    renderError: (ctx, out) => {
      ctx.type = "html";
      ctx.body = page("Sign-in Error", `<p class="error">${escape(out.error_description ?? out.error)}</p>`);
    },
  };
}

/** A development login must not stop at a consent screen: grant what the client asks for. */
async function loadExistingGrant(ctx: KoaContextWithOIDC) {
  const { provider, client, session, params } = ctx.oidc;
  if (!client || !session?.accountId) return undefined;
  const grantId = session.grantIdFor(client.clientId);
  const grant =
    (grantId ? await provider.Grant.find(grantId) : undefined) ??
    new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  const requested = typeof params?.scope === "string" ? params.scope.split(" ") : ["openid"];
  grant.addOIDCScope(requested.filter((scope) => SCOPES.includes(scope)).join(" "));
  await grant.save();
  return grant;
}

export type IdTokenFault = "forged" | "expired";

/** Re-signs the ID token of a successful token response so that it fails verification (see setIdTokenFault). */
async function spoilIdToken(ctx: KoaContextWithOIDC, fault: IdTokenFault, realKey: JWK): Promise<void> {
  const body = ctx.body as Record<string, unknown> | undefined;
  if (ctx.oidc?.route !== "token" || ctx.status !== 200 || typeof body?.id_token !== "string") return;
  const header = decodeProtectedHeader(body.id_token);
  const claims = decodeJwt(body.id_token);
  const now = Math.floor(Date.now() / 1000);
  const key =
    fault === "forged"
      ? (await promisify(generateKeyPair)("rsa", { modulusLength: 2048 })).privateKey
      : createPrivateKey({ key: realKey as unknown as JsonWebKey, format: "jwk" });
  const lifetime = fault === "expired" ? { iat: now - 7200, exp: now - 3600 } : {};
  body.id_token = await new SignJWT({ ...claims, ...lifetime })
    .setProtectedHeader({ alg: "RS256", ...(header.kid ? { kid: header.kid } : {}), typ: "JWT" })
    .sign(key);
}

/** Signs the ID token of a successful token response again with the real key, `count` group ids added. */
async function addGroups(ctx: KoaContextWithOIDC, count: number, realKey: JWK): Promise<void> {
  const body = ctx.body as Record<string, unknown> | undefined;
  if (ctx.oidc?.route !== "token" || ctx.status !== 200 || typeof body?.id_token !== "string") return;
  const header = decodeProtectedHeader(body.id_token);
  const groups = Array.from({ length: count }, (_, i) => groupId(i));
  body.id_token = await new SignJWT({ ...decodeJwt(body.id_token), groups })
    .setProtectedHeader({ alg: "RS256", ...(header.kid ? { kid: header.kid } : {}), typ: "JWT" })
    .sign(createPrivateKey({ key: realKey as unknown as JsonWebKey, format: "jwk" }));
}

/** The `i`th group's id: a GUID-shaped string, the same for the same `i`. */
function groupId(i: number): string {
  const hex = i.toString(16).padStart(12, "0");
  return `00000000-0000-4000-8000-${hex}`;
}

/** Moves an ID token's time claims onto the provider's (offset) clock and signs it again with the real key. */
async function restampIdToken(ctx: KoaContextWithOIDC, offsetSeconds: number, realKey: JWK): Promise<void> {
  const body = ctx.body as Record<string, unknown> | undefined;
  if (ctx.oidc?.route !== "token" || ctx.status !== 200 || typeof body?.id_token !== "string") return;
  const header = decodeProtectedHeader(body.id_token);
  const claims = decodeJwt(body.id_token);
  const shifted: Record<string, number> = {};
  // Entra's ID tokens carry `nbf`; oidc-provider's do not. Add it, so a clock behind the provider's meets it.
  for (const name of ["iat", "exp", "nbf", "auth_time"] as const) {
    const value = name === "nbf" ? (claims.nbf ?? claims.iat) : claims[name];
    if (typeof value === "number") shifted[name] = value + Math.round(offsetSeconds);
  }
  body.id_token = await new SignJWT({ ...claims, ...shifted })
    .setProtectedHeader({ alg: "RS256", ...(header.kid ? { kid: header.kid } : {}), typ: "JWT" })
    .sign(createPrivateKey({ key: realKey as unknown as JsonWebKey, format: "jwk" }));
}

/** OpenID Connect Core 12.2: a refresh response "might not contain an id_token". */
function omitRefreshIdToken(ctx: KoaContextWithOIDC): void {
  const body = ctx.body as Record<string, unknown> | undefined;
  if (ctx.oidc?.route !== "token" || ctx.status !== 200 || !body) return;
  if (ctx.oidc.params?.["grant_type"] === "refresh_token") delete body["id_token"];
}

/**
 * What Entra serves on a tenant's paths besides the v2.0 endpoints oidc-provider answers: the v2.0 document's
 * address (rewritten onto oidc-provider's), nothing at the root document, the v1 document, and a v1 device-code
 * and token endpoint that refuse MSAL's v2 requests. @returns whether the request was answered here.
 */
function answerAsEntraTenant(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  tenantId: string,
): boolean {
  const query = (req.url ?? "").slice(path.length);
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
    return true;
  };
  if (req.method === "GET" && path === `/${tenantId}/v2.0${DISCOVERY_PATH}`) {
    req.url = `${DISCOVERY_PATH}${query}`;
    return false;
  }
  if (path === DISCOVERY_PATH) return json(404, { error: "not_found" });
  const origin = `https://${req.headers.host ?? "localhost"}`;
  if (req.method === "GET" && path === `/${tenantId}${DISCOVERY_PATH}`)
    return json(200, {
      issuer: `https://sts.windows.net/${tenantId}/`,
      authorization_endpoint: `${origin}/${tenantId}/oauth2/authorize`,
      token_endpoint: `${origin}/${tenantId}/oauth2/token`,
      device_authorization_endpoint: `${origin}/${tenantId}/oauth2/devicecode`,
      jwks_uri: `${origin}/common/discovery/keys`,
      end_session_endpoint: `${origin}/${tenantId}/oauth2/logout`,
      response_types_supported: ["code", "id_token", "code id_token", "token id_token", "token"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
    });
  if (req.method === "POST" && /^\/[^/]+\/oauth2\/(devicecode|token)$/.test(path))
    return json(400, {
      error: "invalid_request",
      error_description: "AADSTS900144: The request body must contain the following parameter: 'resource'.",
      error_codes: [900144],
    });
  return false;
}

function addEntraDeviceFields(ctx: KoaContextWithOIDC, interval: number): void {
  const body = ctx.body as Record<string, unknown> | undefined;
  if (ctx.oidc?.route !== "device_authorization" || ctx.status !== 200 || !body) return;
  body.interval = interval;
  body.message =
    `To sign in, use a web browser to open the page ${String(body.verification_uri)} ` +
    `and enter the code ${String(body.user_code)} to authenticate.`;
  // Entra documents verification_uri_complete as not supported, and never sends it.
  delete body.verification_uri_complete;
}

// The stock adapter prints a warning; models check their own expiry, so a plain Map is enough here.
function memoryAdapter(store = new Map<string, AdapterPayload>()): (model: string) => Adapter {
  const findBy = (field: "uid" | "userCode", value: string) =>
    Promise.resolve([...store.values()].find((payload) => payload[field] === value));
  return (model) => {
    const key = (id: string) => `${model}:${id}`;
    return {
      upsert(id, payload) {
        store.set(key(id), payload);
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(store.get(key(id))),
      findByUid: (uid) => findBy("uid", uid),
      findByUserCode: (userCode) => findBy("userCode", userCode),
      consume(id) {
        const payload = store.get(key(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy(id) {
        store.delete(key(id));
        return Promise.resolve();
      },
      revokeByGrantId(grantId) {
        for (const [k, payload] of store) if (payload.grantId === grantId) store.delete(k);
        return Promise.resolve();
      },
    };
  };
}

const userCodeInputSource = (ctx: KoaContextWithOIDC, form: string, _out?: unknown, err?: Error) => {
  const message = !err
    ? "Enter the code displayed on your device"
    : err.name === "AbortedError"
      ? "The sign-in request was cancelled"
      : err.name === "NoCodeError" || "userCode" in err
        ? "The code you entered is incorrect. Try again"
        : "There was an error processing your request";
  const body = `<p class="${err ? "error" : "info"}">${message}</p>${form}`;
  ctx.body = page("Sign-in", `${body}<button type="submit" form="op.deviceInputForm">Continue</button>`);
};

const userCodeConfirmSource = (
  ctx: KoaContextWithOIDC,
  form: string,
  _client: unknown,
  _deviceInfo: unknown,
  code: string,
) => {
  ctx.body = page(
    "Confirm Device",
    `<p>Check that your device shows <code>${escape(code)}</code></p>${form}` +
      `<button type="submit" form="op.deviceConfirmForm">Continue</button>` +
      `<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`,
  );
};

const successSource = (ctx: KoaContextWithOIDC) => {
  ctx.body = page("Sign-in Success", "<p>Your sign-in was successful, you can now close this page.</p>");
};

const page = (title: string, body: string) =>
  `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>` +
  `<body><h1>${title}</h1>${body}</body></html>`;

const escape = (text: unknown) => String(text).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

async function generateCertificate(publicHost: string | undefined, ip: string | undefined) {
  return generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          ...(publicHost ? [{ type: 2 as const, value: publicHost }] : []),
          ...(ip ? [{ type: 7 as const, ip }] : []),
        ],
      },
    ],
  });
}

async function generateSigningKey(): Promise<JWK> {
  // RS256, like Entra's ID tokens.
  const { privateKey } = await promisify(generateKeyPair)("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), use: "sig", alg: "RS256" };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
