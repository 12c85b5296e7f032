/**
 * A token bucket on the monotonic clock: `burst` at once, then `perSecond`. A step of the wall clock neither
 * refills it nor empties it.
 */
export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.refilledAt = now();
  }

  /** Takes one token if there is one; otherwise says how many milliseconds until there is. */
  take(): { readonly ok: true } | { readonly ok: false; readonly retryInMs: number } {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryInMs: Math.ceil(((1 - this.tokens) / this.perSecond) * 1000) };
  }
}
