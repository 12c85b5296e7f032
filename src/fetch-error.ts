/**
 * One line for a failed HTTP request through undici (a wrapped error hides the useful part, e.g.
 * ECONNREFUSED, in `cause`). Shared by the identity provider's network client and the webhook reporter, so both
 * report trouble the same way.
 */
export function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return "timed out";
    const cause = (error as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return `${error.message} (${cause.message})`;
    return error.message;
  }
  return String(error);
}
