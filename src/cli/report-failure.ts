import { ConfigError } from "../config/index.js";
import { StartupError } from "../errors.js";

/**
 * Prints why a command could not run and returns the exit code: one line per problem and no stack trace, since
 * the person reading it is configuring a device, not debugging us. Configuration problems exit 2; a StartupError
 * (another agent on the state directory, a cache key that does not fit) with its own code; anything else 1.
 */
export function reportFailure(error: unknown): number {
  if (error instanceof ConfigError) {
    for (const problem of error.problems) process.stderr.write(`edge-signin: ${problem}\n`);
    return 2;
  }
  if (error instanceof StartupError) {
    process.stderr.write(`edge-signin: ${error.message}\n`);
    return error.exitCode;
  }
  process.stderr.write(`edge-signin: ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}
