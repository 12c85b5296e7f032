/**
 * Access tokens for the device's apps, kept per scope set: one provider call however many apps ask at once, a
 * token renewed ahead of its expiry, a still-valid token served while the provider cannot be reached, and every
 * token dropped at once when the person signed in changes (sign-out, a rejected session, someone else signs in).
 */
import { AccessTokenError, type AccessToken } from "../auth/access-token.js";

/** Where tokens come from: the sign-in core (MSAL's silent acquisition, or the provider's refresh grant). */
export type AccessTokenSource = (scopes: readonly string[]) => Promise<AccessToken>;

/**
 * A token is renewed once it has less than this left (or less than half its life, for short-lived tokens), so an
 * app never gets one that dies in its hands.
 */
export const RENEW_AHEAD_MS = 5 * 60_000;

/** The scope set as a key: order and repeats do not make another token. */
export function scopeKey(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(" ");
}

interface Entry {
  token?: AccessToken;
  /** When the token was renewed (Date.now(), as `expiresOn` is on the wall clock). */
  renewAt?: number;
  pending?: Promise<AccessToken>;
}

export class AccessTokens {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by `clear()`: a provider answer that was asked for before it belongs to another session. */
  private generation = 0;

  constructor(
    private readonly source: AccessTokenSource,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A valid token for `scopes`: the cached one while it has time left, else one fresh call shared by all callers.
   * `admit` is asked only before a new provider call (cached answers and callers who join one cost nothing); it
   * answers how long to wait when the call may not be made now.
   */
  get(scopes: readonly string[], admit: () => number | undefined = () => undefined): Promise<AccessToken> {
    const key = scopeKey(scopes);
    const entry = this.entries.get(key) ?? {};
    this.entries.set(key, entry);
    const cached = entry.token;
    if (cached && entry.renewAt !== undefined && this.now() < entry.renewAt) return Promise.resolve(cached);
    if (!entry.pending) {
      const waitMs = admit();
      if (waitMs !== undefined)
        return Promise.reject(
          new AccessTokenError("rate_limited", "too many token requests; ask again later", {
            retryInMs: waitMs,
          }),
        );
      entry.pending = this.fetch(key, entry, scopes);
    }
    return entry.pending;
  }

  /** Forgets every token: the next request asks the provider again, for whoever is signed in then. */
  clear(): void {
    this.generation += 1;
    this.entries.clear();
  }

  private async fetch(key: string, entry: Entry, scopes: readonly string[]): Promise<AccessToken> {
    const generation = this.generation;
    try {
      const token = await this.source([...new Set(scopes)]);
      if (generation !== this.generation) throw new AccessTokenError("signed_out", "the session changed");
      const now = this.now();
      const life = token.expiresOn.getTime() - now;
      entry.token = token;
      entry.renewAt = now + life - Math.min(RENEW_AHEAD_MS, life / 2);
      return token;
    } catch (error) {
      // The provider is away: a token that still works is better than none (it was renewed ahead of time).
      const cached = entry.token;
      if (
        error instanceof AccessTokenError &&
        error.code === "unavailable" &&
        generation === this.generation &&
        cached &&
        cached.expiresOn.getTime() > this.now()
      )
        return cached;
      if (error instanceof AccessTokenError && error.code !== "unavailable") this.entries.delete(key);
      throw error;
    } finally {
      entry.pending = undefined;
    }
  }
}
