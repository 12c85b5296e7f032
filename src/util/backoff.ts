import type { RetryConfig } from "../config/index.js";

/**
 * Exponential backoff with "equal jitter": the n-th consecutive failure waits between half and all of
 * `initial * 2^(n-1)`, capped at `max`. Jitter keeps a fleet that lost power together from retrying together.
 */
export function backoffDelay(
  attempt: number,
  retry: RetryConfig,
  random: () => number = Math.random,
): number {
  if (attempt <= 0) return 0;
  const ceiling = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
