import { ENV_PREFIX } from "../../config/index.js";

/**
 * Client-id conflicts: two clients that connect with one id take the session from each other in turn. An MQTT 5
 * broker says so (0x8E); a 3.1.1 broker only closes the older connection, so a run of short-lived connections is
 * the sign.
 */

const v = (name: string) => ENV_PREFIX + name;

/** MQTT 5 DISCONNECT reason "Session taken over": another client connected with our client id. */
export const SESSION_TAKEN_OVER = 0x8e;

/**
 * Notices a client-id conflict on a 3.1.1 broker, which closes the older connection without saying why: this many
 * connections in a row that the broker closed soon after accepting them.
 */
export const TAKEOVER_CLOSES = 4;
/** A connection that lived at least this long breaks the run: a broker restart now and then is no conflict. */
export const TAKEOVER_WINDOW_MS = 15_000;

/** Counts short-lived connections; `closed()` says when they add up to a client-id conflict. */
export class TakeoverDetector {
  private shortLived = 0;
  private connectedAt: number | undefined;

  connected(now = Date.now()): void {
    this.connectedAt = now;
  }

  /** Call when an accepted connection closed without our asking; true once the run is long enough. */
  closed(now = Date.now()): boolean {
    if (this.connectedAt === undefined) return false;
    const lived = now - this.connectedAt;
    this.connectedAt = undefined;
    this.shortLived = lived < TAKEOVER_WINDOW_MS ? this.shortLived + 1 : 0;
    return this.shortLived >= TAKEOVER_CLOSES;
  }

  /** The last close had another explanation: it does not count. */
  forgive(): void {
    this.shortLived = Math.max(0, this.shortLived - 1);
  }
}

/**
 * The wait before the next attempt after the `conflicts`-th takeover in a row: from 5 s (or the link's first
 * wait, if longer), doubling, at most the link's longest wait.
 */
export function conflictDelay(
  conflicts: number,
  reconnect: { readonly initialMs: number; readonly maxMs: number },
): number {
  const first = Math.max(5_000, reconnect.initialMs);
  return Math.min(Math.max(reconnect.maxMs, first), first * 2 ** Math.min(20, Math.max(0, conflicts - 1)));
}

/** The one line that names the conflict and what ends it. */
export function takeoverMessage(clientId: string, how: string, role: "agent" | "viewer" = "agent"): string {
  const fix =
    role === "agent"
      ? `two agents with the same device id, or someone logged in with this agent's broker user? Give each device its own ${v("DEVICE_ID")} (or ${v("MQTT_CLIENT_ID")}) and its own broker user`
      : `another display or fleet view with the same broker user (a broker that makes the user name the client id, as the shipped Mosquitto does) or the same ${v("MQTT_CLIENT_ID")}? Give each its own broker user`;
  return `another client uses the MQTT client id "${clientId}" or its user (${how}): ${fix}; retrying with a growing backoff meanwhile`;
}
