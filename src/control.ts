import type { AccountSummary, StateChange } from "./events.js";

/**
 * What can be asked of a running agent: the MQTT commands call these, and so can a library user.
 * A request that does not fit the agent's state is refused with a {@link CommandRefusedError} saying why;
 * it never changes the state.
 */
export interface AgentControl {
  /** Start a device-code flow now: when idle after `cancel`, or to cut short a pause between attempts. */
  signIn(): AgentStatus;
  /** Abandon the code on screen (or the pause before the next one); the agent then waits for `signIn()`. */
  cancel(): AgentStatus;
  /** Forget the account and its tokens; `signed_out` (reason `requested`), then a new code at once. */
  signOut(): Promise<AgentStatus>;
  /** Renew the session with the refresh token now; re-emits `authenticated` with method `refresh`. */
  refresh(): Promise<{ readonly account: AccountSummary }>;
  status(): AgentStatus;
}

export interface AgentStatus extends StateChange {
  /** True while signed out after `cancel`: no code until a `sign-in` command. */
  readonly idle: boolean;
  /** The signed-in account, also while a refresh is retried. */
  readonly account?: AccountSummary;
  /** The MQTT version the agent talks to its broker with: 5, or 4 (3.1.1). */
  readonly mqttProtocolVersion?: 4 | 5;
}

/** A command that does not fit the agent's state right now; the message says why and goes to the requester. */
export class CommandRefusedError extends Error {
  override readonly name = "CommandRefusedError";
}
