import { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import { TokenCacheStore } from "./auth/cache-store.js";
import { IdentitySession } from "./auth/identity-session.js";
import { AccessTokenError, type AccessToken } from "./auth/access-token.js";
import { StateDirLock } from "./storage/state-lock.js";
import { AccessTokens } from "./tokens/access-tokens.js";
import { TokenService } from "./tokens/token-service.js";
import type { Config } from "./config/index.js";
import { CommandRefusedError, type AgentControl, type AgentStatus } from "./control.js";
import type { AccountSummary, AgentEvents, AgentState, SignInPrompt, StateChange } from "./events.js";
import { listen } from "./util/emitter.js";
import { createLogger } from "./util/logger.js";
import { CommandServer } from "./mqtt/command-server.js";
import { MqttGateway, type GatewayEvents } from "./mqtt/gateway.js";
import { deviceTopics } from "./mqtt/topics.js";
import { createReporters } from "./reporters/index.js";
import { prepareStateDir } from "./storage/state-dir.js";
import type { Reporter } from "./reporters/reporter.js";
import { SignInLoop } from "./sign-in/loop.js";

export { MIN_CODE_GAP_MS } from "./sign-in/loop.js";

export interface AgentOptions {
  readonly config: Config;
  /** Root logger; by default JSON lines on stdout at the configured level. */
  readonly logger?: Logger;
  /** Reporters besides the built-in MQTT and log reporters. */
  readonly reporters?: readonly Reporter[];
}

/**
 * The composition root and the command facade. The constructor only wires parts; `start()` connects and starts
 * the sign-in loop (src/sign-in/loop.ts); `stop()` undoes it in reverse order. Commands (`signIn()`,
 * `cancel()`, `signOut()`, `refresh()`) go to the loop, which judges them by the phase it is in.
 */
export class Agent extends EventEmitter<AgentEvents> implements AgentControl {
  readonly config: Config;
  private readonly log: Logger;
  private readonly auth: IdentitySession;
  private readonly lock: StateDirLock;
  private readonly cache: TokenCacheStore;
  private readonly commands: CommandServer;
  private readonly reporters: readonly Reporter[];
  private readonly gateway: MqttGateway;
  /** Access tokens for the device's apps, and the socket they ask on (src/tokens/). */
  private readonly tokens: AccessTokens;
  private readonly tokenService: TokenService | undefined;
  private readonly unsubscribeGateway: () => void;
  private readonly stopping = new AbortController();
  private readonly signInLoop: SignInLoop;
  private current: StateChange = { state: "starting", since: new Date().toISOString() };
  private loop: Promise<void> | undefined;
  /** Set while STATE_DIR has no room for the token cache (see TokenCacheStore's onWrite). */
  private storageFull = false;
  private reportedSkew: number | undefined;

  constructor(options: AgentOptions) {
    super();
    this.config = options.config;
    this.log = (options.logger ?? createLogger(options.config.logLevel)).child({
      deviceId: this.config.deviceId,
    });
    this.lock = new StateDirLock(this.config.stateDir);
    this.cache = new TokenCacheStore({
      stateDir: this.config.stateDir,
      key: this.config.cacheKey,
      log: this.log.child({ module: "cache" }),
      onWrite: (outcome) => this.storageChanged(outcome === "disk_full"),
    });
    this.auth = new IdentitySession(this.config, this.log.child({ module: "auth" }), this.cache);
    this.signInLoop = new SignInLoop(this.auth, this.config, this.log, {
      emit: this.emit.bind(this),
      setState: (change) => this.setState(change),
      state: () => this.current,
    });
    const topics = deviceTopics(this.config.topicPrefix, this.config.deviceId);
    const gateway = new MqttGateway(this.config.mqtt, topics, this.log.child({ module: "mqtt" }));
    this.commands = new CommandServer(
      gateway,
      topics,
      this,
      this.log.child({ module: "commands" }),
      this.config.responseTopicPrefix,
      () => this.reporters.some((reporter) => reporter.busy?.() === true),
    );
    this.gateway = gateway;
    this.unsubscribeGateway = listen<GatewayEvents>(gateway, {
      connect: (up) => this.emit("broker", { connected: true, protocolVersion: up.protocolVersion }),
      disconnect: () => this.emit("broker", { connected: false }),
      problem: (problem) => {
        // A conflict is no halt: the link keeps trying with backoff, and health says why meanwhile.
        if (problem.kind === "client_id_conflict_over") {
          this.emit("broker", { connected: true, problemOver: "client_id_conflict" });
          return;
        }
        const message = problem.kind === "refused" ? problem.error.message : problem.message;
        this.emit("broker", { connected: false, problem: { kind: problem.kind, message } });
      },
    });
    this.tokens = new AccessTokens((scopes) => this.accessTokenFromProvider(scopes));
    // Every token belongs to the person signed in when it was got: a sign-out, a rejected session or a new
    // sign-in drops them all at once, so an app never acts as the wrong person.
    this.on("signed_out", () => this.tokens.clear());
    this.on("authenticated", (event) => {
      if (event.method === "device_code") this.tokens.clear();
    });
    const tokenConfig = this.config.tokenService;
    this.tokenService =
      tokenConfig &&
      new TokenService({
        socketPath: tokenConfig.socketPath,
        socketMode: tokenConfig.socketMode,
        ...(tokenConfig.socketGroup === undefined ? {} : { socketGroup: tokenConfig.socketGroup }),
        allowedScopes: tokenConfig.scopes,
        defaultScopes: this.config.scopes,
        tokens: this.tokens,
        log: this.log.child({ module: "tokens" }),
      });
    // Which reporters run is configuration (src/reporters/index.ts); the flow below only emits events.
    this.reporters = [
      ...createReporters(this.config, { log: this.log, gateway, topics }),
      ...(options.reporters ?? []),
    ];
  }

  get state(): StateChange {
    return this.current;
  }

  /** The code on screen, if one is valid now. */
  get currentPrompt(): SignInPrompt | undefined {
    return this.signInLoop.currentPrompt;
  }

  /**
   * Takes the state directory (one agent per directory), reads the token cache, connects every reporter
   * (the broker first of all), then signs in in the background: silently when a session is cached.
   * @throws StartupError when the state directory is unusable or others can write it (src/storage/state-dir.ts);
   *   StateDirLockedError when another agent holds it; CacheKeyError when the cache key does not open the token cache.
   */
  async start(): Promise<void> {
    prepareStateDir(this.config.stateDir);
    this.lock.acquire();
    // The first code needs the provider's metadata (a file read after a reboot, a round trip on a first boot)
    // and the MSAL client: get them while the broker connects, not after. A failure here is retried by the
    // sign-in loop, which reports it.
    this.auth.prepare().catch(() => undefined);
    try {
      await this.cache.load();
      this.commands.start();
      for (const reporter of this.reporters) await reporter.start(this);
      await this.startTokenService();
      // Connected once every reporter listens: none misses the first connect, and their order does not matter.
      await this.gateway.start();
    } catch (error) {
      for (const reporter of [...this.reporters].reverse()) await reporter.stop().catch(() => undefined);
      await this.gateway.stop().catch(() => undefined);
      this.commands.stop();
      this.lock.release();
      throw error;
    }
    this.setState({ state: "starting" });
    this.loop = this.signInLoop
      .run(this.cache.isEmpty ? "sign_in" : "resume", this.stopping.signal)
      .catch((error: unknown) => {
        // The loop handles its own failures; reaching here is a bug, reported rather than crashing the device.
        this.log.error({ err: error }, "sign-in loop stopped unexpectedly");
        this.setState({ state: "error", reason: "server", message: "internal error; restart the agent" });
      });
  }

  /** Cancels a pending code, clears the display, announces `offline` and disconnects. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    await this.loop;
    this.commands.stop();
    for (const reporter of [...this.reporters].reverse()) {
      try {
        await reporter.stop();
      } catch (error) {
        this.log.warn({ err: error, reporter: reporter.name }, "reporter did not stop cleanly");
      }
    }
    // Last: `offline` goes out after every reporter has sent what it had.
    await this.gateway.stop();
    this.unsubscribeGateway();
    await this.tokenService?.stop();
    await this.auth.close();
    await this.cache.flush();
    this.lock.release();
  }

  /**
   * An access token for the person signed in now, for `scopes` (the sign-in's own by default): what the token
   * service hands the device's apps, for library users in the same process.
   * @throws AccessTokenError: `signed_out`, `unavailable` (provider unreachable, or the agent still starting), or
   *   the provider's refusal of the scope (`consent_required`, `interaction_required`, `invalid_scope`).
   */
  getAccessToken(options: { readonly scopes?: readonly string[] } = {}): Promise<AccessToken> {
    return this.tokens.get(options.scopes && options.scopes.length > 0 ? options.scopes : this.config.scopes);
  }

  private async accessTokenFromProvider(scopes: readonly string[]): Promise<AccessToken> {
    const account = this.signedInAccount();
    const token = await this.auth.accessToken(scopes);
    // The session may have ended while the provider answered.
    if (this.signedInAccount().homeAccountId !== account.homeAccountId)
      throw new AccessTokenError("signed_out", "the person signed in changed");
    return token;
  }

  private signedInAccount(): AccountSummary {
    const account = this.signInLoop.signedInAccount;
    if (account) return account;
    if (this.current.state === "starting")
      throw new AccessTokenError("unavailable", "the agent is still renewing its session");
    throw new AccessTokenError("signed_out", "nobody is signed in on this device");
  }

  /** The token service is for apps: when its socket cannot be had, one warning, and the sign-in goes on. */
  private async startTokenService(): Promise<void> {
    try {
      await this.tokenService?.start();
    } catch (error) {
      // One line, no stack: this is a setting to fix (or two agents on one socket), not a fault in the agent.
      this.log.warn(
        { setting: "EDGE_SIGNIN_TOKEN_SOCKET" },
        `no token service for apps: ${(error as Error).message} (EDGE_SIGNIN_TOKEN_SOCKET; off turns it off)`,
      );
    }
  }

  // ---- commands (AgentControl) -------------------------------------------------------------------

  status(): AgentStatus {
    const account = this.signInLoop.signedInAccount;
    return {
      ...this.current,
      idle: this.signInLoop.currentPhase === "idle",
      mqttProtocolVersion: this.gateway.protocolVersion,
      ...(account ? { account } : {}),
    };
  }

  signIn(): AgentStatus {
    this.assertRunning();
    this.signInLoop.signIn();
    return this.status();
  }

  cancel(): AgentStatus {
    this.assertRunning();
    this.signInLoop.cancel();
    return this.status();
  }

  async signOut(): Promise<AgentStatus> {
    this.assertRunning();
    await this.signInLoop.signOut();
    return this.status();
  }

  /** Concurrent `refresh` commands share one refresh at the provider and one `authenticated` event. */
  refresh(): Promise<{ readonly account: AccountSummary }> {
    this.assertRunning();
    return this.signInLoop.refresh();
  }

  private assertRunning(): void {
    if (!this.loop || this.stopping.signal.aborted) throw new CommandRefusedError("the agent is not running");
  }

  private setState(change: Omit<StateChange, "since"> & { state: AgentState }): void {
    const own = withoutReportedFields(change);
    const skew = this.auth.clockSkewSeconds;
    if (skew !== this.reportedSkew) {
      this.reportedSkew = skew;
      if (skew === undefined) this.log.info("the device's clock agrees with the identity provider's again");
      else
        this.log.warn(
          { clockSkewSeconds: skew },
          `the device's clock is ${Math.abs(skew)} s ${skew > 0 ? "behind" : "ahead of"} the identity provider's; ID tokens are judged by the provider's clock`,
        );
    }
    this.current = {
      ...own,
      since: new Date().toISOString(),
      ...(skew !== undefined ? { clockSkewSeconds: skew } : {}),
      ...(this.storageFull ? { storage: "full" as const } : {}),
    };
    this.emit("state", this.current);
  }

  /** STATE_DIR ran out of room for the token cache, or has room again: the state says so at once. */
  private storageChanged(full: boolean): void {
    if (full === this.storageFull) return;
    this.storageFull = full;
    this.setState(withoutReportedFields(this.current));
  }
}

/** A state change without what setState adds itself (the time, the clock skew, the storage problem). */
function withoutReportedFields(
  change: Partial<StateChange> & { state: AgentState },
): Omit<StateChange, "since"> & { state: AgentState } {
  const own: { -readonly [K in keyof StateChange]?: StateChange[K] } & { state: AgentState } = { ...change };
  delete own.clockSkewSeconds;
  delete own.storage;
  delete own.since;
  return own;
}
