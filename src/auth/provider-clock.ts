/**
 * The identity provider's clock as seen from its answers' `Date` headers (RFC 9110 §6.6.1). A device without a
 * battery-backed clock (a Raspberry Pi before NTP answers) can be hours off; the provider's clock is the one its
 * ID tokens' `iat`, `nbf` and `exp` were stamped with, so that is the clock they are judged by.
 */
export class ProviderClock {
  /** Provider minus local, in ms, from the latest answer that carried a usable `Date`; undefined before one. */
  private skew: number | undefined;

  constructor(
    /** Disagreements up to this many ms are the `Date` header's one-second resolution and latency, not a wrong clock. */
    private readonly toleranceMs: number,
    private readonly localNow: () => number = Date.now,
  ) {}

  /** Notes the `Date` of an answer received now; an absent or unparsable header is ignored. */
  observe(dateHeader: string | undefined): void {
    if (!dateHeader) return;
    const providerTime = Date.parse(dateHeader);
    if (!Number.isFinite(providerTime)) return;
    // `Date` is truncated to whole seconds: the provider's time lies in [date, date + 1 s).
    this.skew = providerTime + 500 - this.localNow();
  }

  /** Provider minus device in whole seconds while they disagree beyond the tolerance; undefined while they agree. */
  get skewSeconds(): number | undefined {
    if (this.skew === undefined || Math.abs(this.skew) <= this.toleranceMs) return undefined;
    return Math.round(this.skew / 1000);
  }

  /** The time to judge the provider's tokens by: the provider's when the clocks disagree, else the device's. */
  now(): Date {
    const skew = this.skewSeconds === undefined ? 0 : (this.skew ?? 0);
    return new Date(this.localNow() + skew);
  }
}
