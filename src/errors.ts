/**
 * A reason the agent refuses to start that the person running it must fix (another agent holds the state
 * directory, the cache key does not open the token cache). `main.ts` prints the message as one line, without a
 * stack trace, and exits with `exitCode`.
 */
export class StartupError extends Error {
  override readonly name: string = "StartupError";
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
