import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import { TokenCacheStore } from "./auth/cache-store.js";
import {
  IdentitySession,
  SessionRejectedError,
  SignInError,
  toSignInError,
  type SignInResult,
} from "./auth/identity-session.js";
import { StateDirLock } from "./storage/state-lock.js";
import { backoffDelay } from "./util/backoff.js";
import type { Config } from "./config/index.js";
import { CommandRefusedError, type AgentControl, type AgentStatus } from "./control.js";
import type {
  AccountSummary,
  AgentEvents,
  AgentState,
  PromptClearReason,
  SignedOutReason,
  SignInPrompt,
  StateChange,
} from "./events.js";
import { createLogger } from "./util/logger.js";
import { CommandServer } from "./mqtt/command-server.js";
import { MqttGateway } from "./mqtt/gateway.js";
import { deviceTopics } from "./mqtt/topics.js";
import { createReporters } from "./reporters/index.js";
import { prepareStateDir } from "./storage/state-dir.js";
import type { Reporter } from "./reporters/reporter.js";

export interface AgentOptions {
  readonly config: Config;
  /** Root logger; by default JSON lines on stdout at the configured level. */
  readonly logger?: Logger;
  /** Reporters besides the built-in MQTT and log reporters. */
  readonly reporters?: readonly Reporter[];
}

/**
 * The phases of the sign-in state machine; each is one method that runs until it hands over to the next.
 * - `resume`: a session is cached; renew it silently (no code on screen).
 * - `sign_in`: device-code flows until someone signs in (codes, expiries, pauses after failures).
 * - `idle`: signed out after `cancel`; nothing happens until `sign-in`.
 * - `signed_in`: keep the session alive with a silent refresh every `REFRESH_INTERVAL_SECONDS`.
 * - `halted`: the broker link stopped for good (another client keeps taking our client id): nothing more until
 *   a restart; state `error` says why.
 */
type Phase = "resume" | "sign_in" | "idle" | "signed_in" | "halted";

/**
 * The composition root and the sign-in state machine. The constructor only wires parts;
 * `start()` connects and begins signing in; `stop()` undoes it in reverse order.
 * Commands (`signIn()`, `cancel()`, `signOut()`, `refresh()`) interrupt the running phase and name the next.
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
  private readonly stopping = new AbortController();
  private current: StateChange = { state: "starting", since: new Date().toISOString() };
  private prompt: SignInPrompt | undefined;
  private loop: Promise<void> | undefined;
  private phase: Phase = "resume";
  /** Aborts the running phase; a command sets `requested` first to say what comes next. */
  private phaseAbort = new AbortController();
  private requested: Phase | undefined;
  /** True during the pause between two device-code attempts, when `sign-in` may cut it short. */
  private pausing = false;
  private account: AccountSummary | undefined;
  private refreshing: Promise<SignInResult> | undefined;
  /** Counts `signed_out` events, so two paths ending the same session report it once. */
  private sessionsEnded = 0;
  /** The `refresh` command in progress: concurrent commands share it, its refresh and its one event. */
  private refreshCommand: Promise<{ readonly account: AccountSummary }> | undefined;
  /** True while `sign-out` removes the session: no refresh may start and write it back. */
  private endingSession = false;
  /** When the last device-code request went out (ms), and whether the next flow was asked for by a command. */
  private lastCodeRequestAt = Number.NEGATIVE_INFINITY;
  private codeByCommand = false;
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
    gateway.onConnect((up) => this.emit("broker", { connected: true, protocolVersion: up.protocolVersion }));
    gateway.onDisconnect(() => this.emit("broker", { connected: false }));
    gateway.onProblem((problem) => {
      const message = problem.kind === "refused" ? problem.error.message : problem.message;
      this.emit("broker", { connected: false, problem: { kind: problem.kind, message } });
      if (problem.kind === "client_id_conflict") this.halt(message);
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
    return this.prompt;
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
    } catch (error) {
      this.commands.stop();
      this.lock.release();
      throw error;
    }
    this.setState({ state: "starting" });
    this.phase = this.cache.isEmpty ? "sign_in" : "resume";
    this.loop = this.run().catch((error: unknown) => {
      // The loop handles its own failures; reaching here is a bug, reported rather than crashing the device.
      this.log.error({ err: error }, "sign-in loop stopped unexpectedly");
      this.setState({ state: "error", reason: "server", message: "internal error; restart the agent" });
    });
  }

  /** Cancels a pending code, clears the display, announces `offline` and disconnects. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    this.phaseAbort.abort();
    await this.loop;
    this.commands.stop();
    this.clearPrompt("cancelled");
    for (const reporter of [...this.reporters].reverse()) {
      try {
        await reporter.stop();
      } catch (error) {
        this.log.warn({ err: error, reporter: reporter.name }, "reporter did not stop cleanly");
      }
    }
    await this.auth.close();
    await this.cache.flush();
    this.lock.release();
  }

  // ---- commands (AgentControl) -------------------------------------------------------------------

  status(): AgentStatus {
    return {
      ...this.current,
      idle: this.phase === "idle",
      mqttProtocolVersion: this.gateway.protocolVersion,
      ...(this.account && this.phase === "signed_in" ? { account: this.account } : {}),
    };
  }

  signIn(): AgentStatus {
    this.assertRunning();
    if (this.phase === "signed_in")
      // Not who: the answer is logged at info, and no claim reaches a log (`status` says who, to the requester).
      throw new CommandRefusedError("already signed in; sign out first");
    if (this.phase === "resume")
      throw new CommandRefusedError("renewing the saved session; sign out first to sign in as someone else");
    if (this.phase === "sign_in" && !this.pausing)
      throw new CommandRefusedError(
        this.prompt
          ? `a code is already shown (${this.prompt.userCode}, valid until ${this.prompt.expiresAt})`
          : "a sign-in is already starting",
      );
    // A code asked for by command waits out MIN_CODE_GAP_MS since the last: cancel + sign-in pairs in a loop
    // must not turn into a device-code request each.
    this.codeByCommand = true;
    this.interrupt("sign_in");
    return this.status();
  }

  cancel(): AgentStatus {
    this.assertRunning();
    if (this.phase !== "sign_in") throw new CommandRefusedError("no sign-in to cancel");
    // Tokens answering a poll already on its way are dropped before they reach the cache: cancelled is cancelled.
    this.auth.discardTokensInFlight();
    this.interrupt("idle");
    // Clear at once rather than when the loop gets round to it: the answer should find the display empty.
    this.clearPrompt("cancelled");
    this.setState({ state: "signed_out" });
    return this.status();
  }

  async signOut(): Promise<AgentStatus> {
    this.assertRunning();
    if (this.phase !== "signed_in" && this.phase !== "resume") throw new CommandRefusedError("not signed in");
    if (this.endingSession) throw new CommandRefusedError("already signing out");
    this.endingSession = true;
    try {
      // A refresh in flight would write the session back after its removal: its tokens are dropped on arrival
      // (so there is no need to wait for the provider), and no new one starts until the session is gone.
      this.auth.discardTokensInFlight();
      const ended = this.sessionsEnded;
      await this.auth.signOut();
      // The session may have ended on its own meanwhile (a rejected refresh); report the sign-out only once.
      if (this.sessionsEnded === ended) this.endSession("requested", "signed out on request");
      // On to a new code, unless a rejected refresh has already gone there (a renewal the sign-out cut short
      // may have ended its phase in the meantime: that is no reason to stay without a code).
      if ((this.phase as Phase) !== "sign_in") this.interrupt("sign_in");
    } finally {
      this.endingSession = false;
    }
    return this.status();
  }

  /** Concurrent `refresh` commands share one refresh at the provider and one `authenticated` event. */
  refresh(): Promise<{ readonly account: AccountSummary }> {
    this.assertRunning();
    if (this.phase !== "signed_in") throw new CommandRefusedError("not signed in");
    this.refreshCommand ??= this.refreshOnRequest().finally(() => (this.refreshCommand = undefined));
    return this.refreshCommand;
  }

  private async refreshOnRequest(): Promise<{ readonly account: AccountSummary }> {
    try {
      const result = await this.refreshSession(this.phaseAbort.signal);
      this.emitAuthenticated(result);
      return { account: result.account };
    } catch (error) {
      if (error instanceof SessionRejectedError)
        throw new CommandRefusedError(`${error.message}; signed out, a new code follows`);
      const failure = toSignInError(error);
      if (failure.reason === "cancelled")
        throw new CommandRefusedError("signed out while the session was being renewed");
      this.log.warn(
        { reason: failure.reason },
        `refresh on request failed, still signed in: ${failure.message}`,
      );
      throw new CommandRefusedError(`refresh failed, still signed in: ${failure.message}`);
    }
  }

  private assertRunning(): void {
    if (!this.loop || this.stopping.signal.aborted) throw new CommandRefusedError("the agent is not running");
    if (this.phase === "halted")
      throw new CommandRefusedError(this.current.message ?? "the agent has halted");
  }

  /** Ends the running phase early and names the next one. */
  private interrupt(next: Phase): void {
    // Switch at once, so the next command is judged by the phase it will find, not the one ending.
    this.phase = next;
    this.requested = next;
    this.phaseAbort.abort();
  }

  // ---- the state machine -------------------------------------------------------------------------

  private async run(): Promise<void> {
    const stopping = this.stopping.signal;
    while (!stopping.aborted) {
      // stop() aborts the running phase's controller too, so the phase needs no signal of its own combined with
      // `stopping` (and AbortSignal.any() would leave a record in `stopping` per phase, for the agent's life).
      const control = new AbortController();
      this.phaseAbort = control;
      let next = await this.phases[this.phase](control.signal);
      if (control.signal.aborted && this.requested) next = this.requested;
      // The phase is over: abort its signal even when it ended by itself, so whatever it left listening (an
      // MSAL poll still in flight, a timer) lets go now.
      control.abort();
      this.requested = undefined;
      this.pausing = false;
      this.phase = next;
    }
  }

  private readonly phases: Record<Phase, (signal: AbortSignal) => Promise<Phase>> = {
    resume: (signal) => this.resume(signal),
    sign_in: (signal) => this.signInWithCode(signal),
    idle: (signal) => this.idle(signal),
    signed_in: (signal) => this.keepAlive(signal),
    halted: (signal) => this.halted(signal),
  };

  /** Stops signing in for good: no code can reach a display while another client holds our connection. */
  private halt(message: string): void {
    this.clearPrompt("failed");
    this.interrupt("halted");
    this.setState({ state: "error", reason: "broker", message });
  }

  /** Waits for stop(); the state set by halt() stays. */
  private async halted(signal: AbortSignal): Promise<Phase> {
    // The broker link has stopped, so nothing else holds the process up: stay (health says unhealthy, and why)
    // until stopped, rather than exit and have a restart policy start the fight over the client id again.
    const keepAlive = setInterval(() => undefined, 60_000);
    try {
      await untilAborted(signal);
    } finally {
      clearInterval(keepAlive);
    }
    return "halted";
  }

  /** A session is cached: renew it without bothering anyone. Trouble reaching the provider is no sign-out. */
  private async resume(signal: AbortSignal): Promise<Phase> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const account = await this.auth.cachedAccount();
        if (!account) return "sign_in";
        const result = await this.refreshSession(signal);
        this.signedIn(result);
        return "signed_in";
      } catch (error) {
        if (error instanceof SessionRejectedError) return "sign_in";
        const failure = toSignInError(error);
        if (failure.reason === "cancelled" || signal.aborted) break;
        failures += 1;
        const delay = this.retryDelay(failures);
        this.emit("sign_in_failed", { reason: failure.reason, message: failure.message, retryAt: at(delay) });
        this.setState({
          state: "error",
          reason: failure.reason,
          message: failure.message,
          retryAt: at(delay),
        });
        this.log.debug({ err: failure.cause }, "silent sign-in failed");
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
    return "idle";
  }

  /** Device-code flows until someone signs in; expired codes and failures lead to new codes, with backoff. */
  private async signInWithCode(signal: AbortSignal): Promise<Phase> {
    let failures = 0;
    let expiries = 0;
    while (!signal.aborted) {
      const gap = this.codeByCommand ? this.lastCodeRequestAt + MIN_CODE_GAP_MS - performance.now() : 0;
      if (gap > 0 || this.auth.quietForMs > 0) {
        await this.pauseBeforeCode(Math.max(gap, this.auth.quietForMs), signal);
        continue;
      }
      this.codeByCommand = false;
      if (this.current.state !== "signed_out" || this.current.nextCodeAt !== undefined)
        this.setState({ state: "signed_out" });
      this.lastCodeRequestAt = performance.now();
      try {
        const result = await this.auth.signIn(signal, (prompt) => {
          // MSAL hands over a code whose request was already on its way when the flow was cancelled.
          if (!signal.aborted) this.showPrompt(prompt);
        });
        if (signal.aborted) {
          // Cancelled (or stopped) in the instant the person signed in: the command wins, so forget them again.
          if (this.requested === "idle") await this.auth.signOut().catch(() => undefined);
          break;
        }
        this.clearPrompt("used");
        this.signedIn(result);
        return "signed_in";
      } catch (error) {
        const failure = error instanceof SignInError ? error : new SignInError("server", String(error));
        if (failure.reason === "cancelled" || signal.aborted) break;
        const expiredPrompt = this.prompt;
        let delay: number;
        if (failure.reason === "expired" && expiredPrompt) {
          // A fresh code at once the first time; then slower and slower, so an unattended device stays quiet.
          expiries += 1;
          failures = 0;
          delay = Math.max(backoffDelay(expiries - 1, this.config.retry), this.auth.quietForMs);
          const nextCodeAt = at(delay);
          this.clearPrompt("expired");
          this.emit("code_expired", {
            userCode: expiredPrompt.userCode,
            expiredAt: new Date().toISOString(),
            nextCodeAt,
          });
          this.setState({ state: "signed_out", nextCodeAt });
        } else {
          failures += 1;
          delay = this.retryDelay(failures);
          this.clearPrompt("failed");
          this.emit("sign_in_failed", {
            reason: failure.reason,
            message: failure.message,
            retryAt: at(delay),
          });
          this.log.debug({ err: failure.cause }, "sign-in attempt failed");
          if (failure.reason === "network" || failure.reason === "server") {
            this.setState({
              state: "error",
              reason: failure.reason,
              message: failure.message,
              retryAt: at(delay),
            });
          } else {
            // Declined, or an ID token refused: nobody is signed in and no code is shown until the next one.
            this.setState({ state: "signed_out", nextCodeAt: at(delay) });
          }
        }
        this.pausing = true;
        await sleep(delay, undefined, { signal }).catch(() => undefined);
        this.pausing = false;
      }
    }
    return "idle";
  }

  /**
   * No code yet: the provider asked for quiet (Retry-After), or a commanded code came too soon after the last.
   * The state says so (`signed_out` with `nextCodeAt`); a `sign-in` or `cancel` during it ends it.
   */
  private async pauseBeforeCode(delay: number, signal: AbortSignal): Promise<void> {
    const nextCodeAt = at(delay);
    this.setState({ state: "signed_out", nextCodeAt });
    this.pausing = true;
    await sleep(delay, undefined, { signal }).catch(() => undefined);
    this.pausing = false;
  }

  /** Backoff after the n-th failure in a row, but never before the provider's Retry-After has passed. */
  private retryDelay(failures: number): number {
    return Math.max(backoffDelay(failures, this.config.retry), this.auth.quietForMs);
  }

  /** After `cancel`: signed out, no code, until a `sign-in` command (which interrupts this wait). */
  private async idle(signal: AbortSignal): Promise<Phase> {
    this.clearPrompt("cancelled");
    if (this.current.state !== "signed_out") this.setState({ state: "signed_out" });
    await untilAborted(signal);
    return "idle";
  }

  /**
   * Signed in: refresh silently every `REFRESH_INTERVAL_SECONDS`, so an idle device never falls past the
   * refresh token's inactivity limit. A rejected refresh ends the session; a failed one is retried sooner.
   */
  private async keepAlive(signal: AbortSignal): Promise<Phase> {
    let failures = 0;
    while (!signal.aborted) {
      const delay = failures === 0 ? this.config.refreshIntervalMs : this.retryDelay(failures);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      try {
        const result = await this.refreshSession(signal);
        failures = 0;
        this.account = result.account;
        this.log.debug("session refreshed");
      } catch (error) {
        if (error instanceof SessionRejectedError) return "sign_in";
        const failure = toSignInError(error);
        // A sign-out ended this refresh: the phase is about to end, there is nothing to retry.
        if (signal.aborted || failure.reason === "cancelled") break;
        failures += 1;
        this.log.warn(
          { reason: failure.reason, retryInMs: this.retryDelay(failures) },
          `session refresh failed, still signed in: ${failure.message}`,
        );
      }
    }
    return "signed_in";
  }

  /**
   * One silent refresh at a time, shared by the keep-alive and the `refresh` command. A rejected session is
   * reported here, once, whoever asked.
   */
  private refreshSession(signal: AbortSignal): Promise<SignInResult> {
    if (this.endingSession && !this.refreshing)
      return Promise.reject(new SignInError("cancelled", "signing out"));
    this.refreshing ??= this.auth
      .refresh(signal)
      .catch((error: unknown) => {
        if (error instanceof SessionRejectedError) {
          this.interrupt("sign_in");
          this.endSession("rejected", error.message);
        }
        throw error;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  private signedIn(result: SignInResult): void {
    this.account = result.account;
    this.phase = "signed_in";
    this.emitAuthenticated(result);
    this.setState({ state: "signed_in", account: result.account });
  }

  private emitAuthenticated(result: SignInResult): void {
    this.emit("authenticated", {
      method: result.method,
      claims: result.claims,
      account: result.account,
      verified: result.verified,
      ...(result.idToken !== undefined ? { idToken: result.idToken } : {}),
      ...(result.idTokenReused ? { idTokenReused: true as const } : {}),
    });
  }

  private endSession(reason: SignedOutReason, message: string): void {
    this.sessionsEnded += 1;
    this.account = undefined;
    this.emit("signed_out", { reason, message });
    this.setState({ state: "signed_out" });
  }

  private showPrompt(prompt: SignInPrompt): void {
    this.prompt = prompt;
    this.setState({ state: "awaiting_user", expiresAt: prompt.expiresAt });
    this.emit("prompt", prompt);
  }

  private clearPrompt(reason: PromptClearReason): void {
    if (!this.prompt) return;
    this.prompt = undefined;
    this.emit("prompt_cleared", reason);
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

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Least time between two device-code requests when the second was asked for by a `sign-in` command (after
 * `cancel`, or during a pause): a loop of cancel + sign-in gets one code per 5 s at most, not one each.
 */
export const MIN_CODE_GAP_MS = 5_000;

function at(delayMs: number): string {
  return new Date(Date.now() + delayMs).toISOString();
}
