/**
 * One line for a failed HTTP request through undici (a wrapped error hides the useful part, e.g.
 * ECONNREFUSED, in `cause`). Shared by the identity provider's network client and the webhook reporter, so both
 * report trouble the same way.
 */
export function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    // Only a timeout is a timeout. undici also names its own RequestAbortedError "AbortError", and uses it for
    // failures that say more than "aborted": a proxy that refuses the tunnel ("Proxy response (407) !== 200 when
    // HTTP Tunneling") would otherwise be reported as "timed out", sending people after the wrong fault.
    if (error.name === "TimeoutError") return "timed out";
    if (error.name === "AbortError" && /^(This operation was aborted|Request aborted)$/.test(error.message))
      return "aborted";
    const cause = (error as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return `${error.message} (${cause.message})`;
    return error.message;
  }
  return String(error);
}
