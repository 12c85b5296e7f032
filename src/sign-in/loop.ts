import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import {
  SessionRejectedError,
  SignInError,
  toSignInError,
  type IdentitySession,
  type SignInResult,
} from "../auth/identity-session.js";
import type { Config } from "../config/index.js";
import { CommandRefusedError } from "../control.js";
import type {
  AccountSummary,
  AgentEvents,
  AgentState,
  PromptClearReason,
  SignedOutReason,
  SignInPrompt,
  StateChange,
} from "../events.js";
import { backoffDelay } from "../util/backoff.js";

/**
 * The phases of the sign-in state machine; each is one method that runs until it hands over to the next.
 * - `resume`: a session is cached; renew it silently (no code on screen).
 * - `sign_in`: device-code flows until someone signs in (codes, expiries, pauses after failures).
 * - `idle`: signed out after `cancel`; nothing happens until `sign-in`.
 * - `signed_in`: keep the session alive with a silent refresh every `REFRESH_INTERVAL_SECONDS`.
 */
export type Phase = "resume" | "sign_in" | "idle" | "signed_in";

/**
 * Where the `sign_in` phase is, for the commands that depend on it: asking for a code, showing one, or pausing
 * between two (when a `sign-in` command may cut the pause short).
 */
export type SignInStep = "requesting" | "showing" | "pausing";

/** What the loop tells the world; the agent adds the time, the clock skew and the storage state. */
export interface SignInLoopOutput {
  readonly emit: EventEmitter<AgentEvents>["emit"];
  setState(change: Omit<StateChange, "since"> & { state: AgentState }): void;
  /** The state as last set. */
  state(): StateChange;
}

/**
 * Least time between two device-code requests when the second replaces a code that ended (expired, declined,
 * refused) or was asked for by a `sign-in` command (after `cancel`, or during a pause): a provider that issues
 * codes living 1 s, or a loop of cancel + sign-in, gets one request per 5 s at most.
 */
export const MIN_CODE_GAP_MS = 5_000;

/**
 * The sign-in state machine: one phase at a time (see {@link Phase}), each ended by itself or by a command,
 * which names the next phase (`next`) and aborts the running one. Commands are judged by the phase they find.
 */
export class SignInLoop {
  private phase: Phase = "resume";
  private step: SignInStep = "requesting";
  /** Aborts the running phase; a command sets `next` first to say what comes next. */
  private phaseAbort = new AbortController();
  private next: Phase | undefined;
  private prompt: SignInPrompt | undefined;
  private account: AccountSummary | undefined;
  private refreshing: Promise<SignInResult> | undefined;
  /** Counts `signed_out` events, so two paths ending the same session report it once. */
  private sessionsEnded = 0;
  /** The `refresh` command in progress: concurrent commands share it, its refresh and its one event. */
  private refreshCommand: Promise<{ readonly account: AccountSummary }> | undefined;
  /** While `sign-out` removes the session: no refresh may start and write it back. */
  private endingSession = false;
  /** When the last device-code request went out (`performance.now()`), and whether the next was commanded. */
  private lastCodeRequestAt = Number.NEGATIVE_INFINITY;
  private codeByCommand = false;

  constructor(
    private readonly auth: IdentitySession,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly out: SignInLoopOutput,
  ) {}

  get currentPhase(): Phase {
    return this.phase;
  }

  /** The code on screen, if one is valid now. */
  get currentPrompt(): SignInPrompt | undefined {
    return this.prompt;
  }

  /** The signed-in account, while signed in. */
  get signedInAccount(): AccountSummary | undefined {
    return this.phase === "signed_in" ? this.account : undefined;
  }

  /** Runs phases until `stopping` aborts; `first` is `resume` when a session is cached. */
  async run(first: Phase, stopping: AbortSignal): Promise<void> {
    this.phase = first;
    const onStop = () => this.phaseAbort.abort();
    stopping.addEventListener("abort", onStop, { once: true });
    try {
      while (!stopping.aborted) {
        // stop() aborts the running phase's controller, so the phase needs no signal of its own combined with
        // `stopping` (and AbortSignal.any() would leave a record in `stopping` per phase, for the agent's life).
        const control = new AbortController();
        this.phaseAbort = control;
        if (stopping.aborted) break;
        let next = await this.phases[this.phase](control.signal);
        if (control.signal.aborted && this.next) next = this.next;
        // The phase is over: abort its signal even when it ended by itself, so whatever it left listening (a
        // poll still in flight, a timer) lets go now.
        control.abort();
        this.next = undefined;
        this.step = "requesting";
        this.phase = next;
      }
    } finally {
      stopping.removeEventListener("abort", onStop);
      this.clearPrompt("cancelled");
    }
  }

  // ---- commands ----------------------------------------------------------------------------------

  signIn(): void {
    if (this.phase === "signed_in")
      // Not who: the answer is logged at info, and no claim reaches a log (`status` says who, to the requester).
      throw new CommandRefusedError("already signed in; sign out first");
    if (this.phase === "resume")
      throw new CommandRefusedError("renewing the saved session; sign out first to sign in as someone else");
    if (this.phase === "sign_in" && this.step !== "pausing")
      throw new CommandRefusedError(
        this.prompt
          ? `a code is already shown (${this.prompt.userCode}, valid until ${this.prompt.expiresAt})`
          : "a sign-in is already starting",
      );
    // A code asked for by command waits out MIN_CODE_GAP_MS since the last: cancel + sign-in pairs in a loop
    // must not turn into a device-code request each.
    this.codeByCommand = true;
    this.interrupt("sign_in");
  }

  cancel(): void {
    if (this.phase !== "sign_in") throw new CommandRefusedError("no sign-in to cancel");
    // Tokens answering a poll already on its way are dropped before they reach the cache: cancelled is cancelled.
    this.auth.discardTokensInFlight();
    this.interrupt("idle");
    // Clear at once rather than when the loop gets round to it: the answer should find the display empty.
    this.clearPrompt("cancelled");
    this.out.setState({ state: "signed_out", idle: true });
  }

  async signOut(): Promise<void> {
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
  }

  /** Concurrent `refresh` commands share one refresh at the provider and one `authenticated` event. */
  refresh(): Promise<{ readonly account: AccountSummary }> {
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

  /** Ends the running phase early and names the next one. */
  private interrupt(next: Phase): void {
    // Switch at once, so the next command is judged by the phase it will find, not the one ending.
    this.phase = next;
    this.step = "requesting";
    this.next = next;
    this.phaseAbort.abort();
  }

  // ---- the phases --------------------------------------------------------------------------------

  private readonly phases: Record<Phase, (signal: AbortSignal) => Promise<Phase>> = {
    resume: (signal) => this.resume(signal),
    sign_in: (signal) => this.signInWithCode(signal),
    idle: (signal) => this.idle(signal),
    signed_in: (signal) => this.keepAlive(signal),
  };

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
        this.out.emit("sign_in_failed", {
          reason: failure.reason,
          message: failure.message,
          retryAt: at(delay),
        });
        this.out.setState({
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
    while (!signal.aborted) {
      const gap = this.codeByCommand ? this.lastCodeRequestAt + MIN_CODE_GAP_MS - performance.now() : 0;
      if (gap > 0 || this.auth.quietForMs > 0) {
        await this.pauseBeforeCode(Math.max(gap, this.auth.quietForMs), signal);
        continue;
      }
      this.codeByCommand = false;
      this.step = "requesting";
      const current = this.out.state();
      if (current.state !== "signed_out" || current.nextCodeAt !== undefined || current.idle !== undefined)
        this.out.setState({ state: "signed_out" });
      this.lastCodeRequestAt = performance.now();
      try {
        const result = await this.auth.signIn(signal, (prompt) => {
          // A code whose request was already on its way when the flow was cancelled is not shown.
          if (!signal.aborted) this.showPrompt(prompt);
        });
        if (signal.aborted) {
          // Cancelled (or stopped) in the instant the person signed in: the command wins, so forget them again.
          if (this.next === "idle") await this.auth.signOut().catch(() => undefined);
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
          // A fresh code at once: a display always has a code up while the provider answers. An unattended
          // device asks once per code lifetime (at most once per MIN_CODE_GAP_MS if codes live shorter).
          failures = 0;
          delay = this.nextCodeDelay();
          const nextCodeAt = at(delay);
          this.clearPrompt("expired");
          this.out.emit("code_expired", {
            userCode: expiredPrompt.userCode,
            expiredAt: new Date().toISOString(),
            nextCodeAt,
          });
          if (delay > 0) this.out.setState({ state: "signed_out", nextCodeAt });
        } else if (failure.reason === "declined" || failure.reason === "invalid_token") {
          // A person acted (declined, or signed in with an ID token we refuse): the provider answered, so the
          // next person gets a code at once. Each such end needs a person, which bounds the requests.
          failures = 0;
          delay = this.nextCodeDelay();
          this.reportFailure(failure, delay);
          if (delay > 0) this.out.setState({ state: "signed_out", nextCodeAt: at(delay) });
        } else {
          // The provider refused the device-code request or failed: slower and slower, never before Retry-After.
          failures += 1;
          delay = this.retryDelay(failures);
          this.reportFailure(failure, delay);
          if (failure.reason === "network" || failure.reason === "server") {
            this.out.setState({
              state: "error",
              reason: failure.reason,
              message: failure.message,
              retryAt: at(delay),
            });
          } else {
            // A code that expired before it was shown: no code until the next one.
            this.out.setState({ state: "signed_out", nextCodeAt: at(delay) });
          }
        }
        if (delay <= 0) continue;
        await this.pause(delay, signal);
      }
    }
    return "idle";
  }

  /**
   * No code yet: the provider asked for quiet (Retry-After), or a commanded code came too soon after the last.
   * The state says so (`signed_out` with `nextCodeAt`); a `sign-in` or `cancel` during it ends it.
   */
  private async pauseBeforeCode(delay: number, signal: AbortSignal): Promise<void> {
    this.out.setState({ state: "signed_out", nextCodeAt: at(delay) });
    await this.pause(delay, signal);
  }

  /** The pause between two codes, which a `sign-in` command may cut short. */
  private async pause(delay: number, signal: AbortSignal): Promise<void> {
    this.step = "pausing";
    await sleep(delay, undefined, { signal }).catch(() => undefined);
    this.step = "requesting";
  }

  /** The code on screen is gone and why: `sign_in_failed`, with when the next attempt starts. */
  private reportFailure(failure: SignInError, delay: number): void {
    this.clearPrompt("failed");
    this.out.emit("sign_in_failed", { reason: failure.reason, message: failure.message, retryAt: at(delay) });
    this.log.debug({ err: failure.cause }, "sign-in attempt failed");
  }

  /** Until the next code after one ended: MIN_CODE_GAP_MS since the last request, and the provider's Retry-After. */
  private nextCodeDelay(): number {
    return Math.max(0, this.lastCodeRequestAt + MIN_CODE_GAP_MS - performance.now(), this.auth.quietForMs);
  }

  /** Backoff after the n-th failure in a row, but never before the provider's Retry-After has passed. */
  private retryDelay(failures: number): number {
    return Math.max(backoffDelay(failures, this.config.retry), this.auth.quietForMs);
  }

  /** After `cancel`: signed out, no code, until a `sign-in` command (which interrupts this wait). */
  private async idle(signal: AbortSignal): Promise<Phase> {
    this.clearPrompt("cancelled");
    const current = this.out.state();
    if (current.state !== "signed_out" || current.idle !== true)
      this.out.setState({ state: "signed_out", idle: true });
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
    this.out.setState({ state: "signed_in", account: result.account });
  }

  private emitAuthenticated(result: SignInResult): void {
    this.out.emit("authenticated", result);
  }

  private endSession(reason: SignedOutReason, message: string): void {
    this.sessionsEnded += 1;
    this.account = undefined;
    this.out.emit("signed_out", { reason, message });
    this.out.setState({ state: "signed_out" });
  }

  private showPrompt(prompt: SignInPrompt): void {
    this.prompt = prompt;
    this.step = "showing";
    this.out.setState({ state: "awaiting_user", expiresAt: prompt.expiresAt });
    this.out.emit("prompt", prompt);
  }

  private clearPrompt(reason: PromptClearReason): void {
    if (!this.prompt) return;
    this.prompt = undefined;
    this.out.emit("prompt_cleared", reason);
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

function at(delayMs: number): string {
  return new Date(Date.now() + delayMs).toISOString();
}
