/** A signal for one piece of work, and `release()` to call when the work is over, whichever way it ended. */
export interface BoundedSignal {
  readonly signal: AbortSignal;
  release(): void;
}

/**
 * A signal that aborts when `parent` does (with its reason) or after `timeoutMs` (with a `TimeoutError`, as
 * `AbortSignal.timeout()` would), whichever comes first.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: Node 20 records every signal `any()` makes in each
 * of its parents, for the parent's whole life (about 100 bytes each, measured; the record is never pruned).
 * The parents here live as long as the agent, so each use would leak a little, forever.
 */
export function boundedSignal(parent: AbortSignal, timeoutMs: number): BoundedSignal {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parent.reason);
  const timer = setTimeout(
    () => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
    timeoutMs,
  );
  if (parent.aborted) onParentAbort();
  else parent.addEventListener("abort", onParentAbort, { once: true });
  return {
    signal: controller.signal,
    release: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", onParentAbort);
    },
  };
}
