import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import type { AgentEvents } from "../events.js";
import { subscribe, type Reporter } from "./reporter.js";

/** Writes the event stream to the log: what happened, never a token, and never who (no claim, name or email). */
export class LogReporter implements Reporter {
  readonly name = "log";
  private unsubscribers: Array<() => void> = [];

  constructor(private readonly log: Logger) {}

  start(events: EventEmitter<AgentEvents>): Promise<void> {
    const onError = (error: unknown) => this.log.error({ err: error }, "log reporter failed");
    this.unsubscribers = [
      subscribe(
        events,
        "state",
        // The account (who) stays out, as below.
        ({ account: _account, ...change }) => this.log.info({ state: change }, `state ${change.state}`),
        onError,
      ),
      subscribe(
        events,
        "prompt",
        (p) =>
          this.log.info(
            { userCode: p.userCode, verificationUri: p.verificationUri, expiresAt: p.expiresAt },
            "code issued",
          ),
        onError,
      ),
      subscribe(events, "prompt_cleared", (reason) => this.log.info({ reason }, "display cleared"), onError),
      subscribe(
        events,
        "authenticated",
        // Who signed in stays out of the log (README: no claim reaches a log); the event carries it to consumers.
        (e) => this.log.info({ method: e.method }, "signed in"),
        onError,
      ),
      subscribe(
        events,
        "code_expired",
        (e) => this.log.info({ nextCodeAt: e.nextCodeAt }, "code expired"),
        onError,
      ),
      subscribe(
        events,
        "sign_in_failed",
        (e) => this.log.warn({ reason: e.reason, retryAt: e.retryAt }, `sign-in failed: ${e.message}`),
        onError,
      ),
      subscribe(
        events,
        "signed_out",
        (e) => this.log.info({ reason: e.reason }, `signed out: ${e.message}`),
        onError,
      ),
    ];
    return Promise.resolve();
  }

  stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    return Promise.resolve();
  }
}
