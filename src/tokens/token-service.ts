import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { TokenBucket } from "../util/token-bucket.js";
import { AccessTokenError, type AccessToken } from "../auth/access-token.js";
import type { AccessTokens } from "./access-tokens.js";

/** Provider calls for apps: this many at once, then this many a second (as MQTT commands). */
export const TOKEN_CALL_BURST = 10;
export const TOKEN_CALLS_PER_SECOND = 2;
/** Most characters of a request's target: a long list of scopes fits; a flood does not. */
const MAX_TARGET_CHARS = 4096;
/** Most scopes in one request. */
const MAX_SCOPES = 32;
/** OpenID Connect's own scopes: always allowed, as the sign-in asks for them. */
const OIDC_SCOPES = ["openid", "profile", "offline_access"];

export interface TokenServiceOptions {
  /** EDGE_SIGNIN_TOKEN_SOCKET. */
  readonly socketPath: string;
  /** EDGE_SIGNIN_TOKEN_SOCKET_MODE: who may connect, as a file mode (0660 by default). */
  readonly socketMode: number;
  /** EDGE_SIGNIN_TOKEN_SOCKET_GROUP: the socket's group (a numeric gid), so apps in that group can connect. */
  readonly socketGroup?: number;
  /** EDGE_SIGNIN_TOKEN_SCOPES plus the sign-in's own scopes: what apps may ask for. */
  readonly allowedScopes: readonly string[];
  /** The scopes of the sign-in itself: what a request that names none gets a token for. */
  readonly defaultScopes: readonly string[];
  readonly tokens: AccessTokens;
  readonly log: Logger;
}

/** The one JSON answer for each way a request can fail: HTTP status and the `error` apps branch on. */
const STATUS: Record<AccessTokenError["code"], number> = {
  signed_out: 401,
  unavailable: 503,
  rate_limited: 429,
  consent_required: 403,
  interaction_required: 403,
  invalid_scope: 403,
};

/**
 * The device's token service: a local HTTP API on a Unix domain socket (never a TCP port), so who may ask is
 * decided by the file system: the socket's mode and group. `GET /v1/token?scope=...` answers
 * `{accessToken, tokenType, expiresOn, scopes}` for the person signed in now.
 */
export class TokenService {
  private server: Server | undefined;
  private readonly calls = new TokenBucket(TOKEN_CALL_BURST, TOKEN_CALLS_PER_SECOND);
  private readonly allowed: ReadonlySet<string>;

  constructor(private readonly options: TokenServiceOptions) {
    this.allowed = new Set([...OIDC_SCOPES, ...options.allowedScopes, ...options.defaultScopes]);
  }

  /** Listens on the socket; throws (one line naming the setting) when it cannot. */
  async start(): Promise<void> {
    const path = this.options.socketPath;
    // A directory made here lets the socket's group in (the process umask would leave it 0700); one that exists
    // is the operator's, and left as it is.
    const made = mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    for (let dir = dirname(path); made !== undefined && dir.startsWith(made); dir = dirname(dir)) {
      chmodSync(dir, 0o750);
      if (this.options.socketGroup !== undefined) chownSync(dir, -1, this.options.socketGroup);
      if (dir === made) break;
    }
    await removeStaleSocket(path);
    const server = createServer((req, res) => void this.answer(req, res));
    server.maxHeadersCount = 32;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // Created with no access for anyone else, then opened up to the configured mode: no moment of a wider one.
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => {
          server.off("error", reject);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    if (this.options.socketGroup !== undefined) chownSync(path, -1, this.options.socketGroup);
    chmodSync(path, this.options.socketMode);
    this.server = server;
    this.options.log.info(
      { socket: path, mode: this.options.socketMode.toString(8) },
      "token service listening for the device's apps",
    );
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? "/";
    if (target.length > MAX_TARGET_CHARS)
      return send(res, 414, { error: "invalid_request", message: "request too long" });
    const url = new URL(target, "http://token-service");
    if (url.pathname !== "/v1/token")
      return send(res, 404, { error: "not_found", message: "GET /v1/token?scope=..." });
    if (req.method !== "GET" && req.method !== "HEAD")
      return send(res, 405, { error: "method_not_allowed", message: "GET only" }, { allow: "GET, HEAD" });
    const asked = url.searchParams.getAll("scope").flatMap((value) => value.split(/[\s,]+/).filter(Boolean));
    if (asked.length > MAX_SCOPES)
      return send(res, 400, { error: "invalid_request", message: `at most ${MAX_SCOPES} scopes` });
    const scopes = asked.length > 0 ? asked : [...this.options.defaultScopes];
    const refused = scopes.filter((scope) => !this.allowed.has(scope));
    if (refused.length > 0)
      return send(res, 403, {
        error: "scope_not_allowed",
        scope: refused.join(" "),
        message: `not allowed for apps: ${refused.join(" ")} (list it in EDGE_SIGNIN_TOKEN_SCOPES)`,
      });
    try {
      const token = await this.options.tokens.get(scopes, () => {
        const taken = this.calls.take();
        return taken.ok ? undefined : taken.retryInMs;
      });
      this.options.log.debug({ scopes: token.scopes }, "access token handed to an app");
      send(res, 200, wire(token));
    } catch (error) {
      if (!(error instanceof AccessTokenError)) {
        this.options.log.error({ err: error }, "token service failed");
        return send(res, 500, { error: "internal", message: "internal error" });
      }
      const status = STATUS[error.code];
      const retry: Record<string, string> =
        error.code === "unavailable" || error.code === "rate_limited"
          ? { "retry-after": String(Math.max(1, Math.ceil((error.retryInMs ?? 5_000) / 1000))) }
          : {};
      const scope = status === 403 ? { scope: scopes.join(" ") } : {};
      send(res, status, { error: error.code, ...scope, message: error.message }, retry);
    }
  }
}

function wire(token: AccessToken) {
  return {
    accessToken: token.accessToken,
    tokenType: token.tokenType,
    expiresOn: token.expiresOn.toISOString(),
    scopes: token.scopes,
  };
}

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers })
    .end(res.req.method === "HEAD" ? undefined : text);
}

/**
 * A socket file left by an agent that died is removed; one that answers belongs to a live agent, and anything that
 * is not a socket is never touched.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket)
    throw new Error(`${path} exists and is not a socket: set EDGE_SIGNIN_TOKEN_SOCKET to another path`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => (probe.destroy(), resolve(true)));
    probe.once("error", () => resolve(false));
  });
  if (live)
    throw new Error(
      `another agent serves tokens at ${path}: give each agent its own EDGE_SIGNIN_TOKEN_SOCKET`,
    );
  unlinkSync(path);
}
