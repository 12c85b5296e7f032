/** The longest pause a `Retry-After` can impose: a wrong or hostile header must not silence the device for days. */
export const MAX_RETRY_AFTER_MS = 15 * 60_000;

/**
 * `Retry-After` (RFC 9110 §10.2.3) as ms from now: delay-seconds or an HTTP-date; 0 when absent, unparsable or
 * in the past; at most {@link MAX_RETRY_AFTER_MS}. An HTTP-date is measured against the answer's own `Date`
 * when it has one, so a device whose clock is off still waits as long as the provider meant.
 */
export function parseRetryAfter(
  value: string | undefined,
  responseDate?: string,
  now: number = Date.now(),
): number {
  if (!value) return 0;
  const text = value.trim();
  const sentAt = responseDate ? Date.parse(responseDate) : Number.NaN;
  const ms = /^\d+$/.test(text)
    ? Number(text) * 1000
    : Date.parse(text) - (Number.isFinite(sentAt) ? sentAt : now);
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : 0;
}
