import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { StartupError } from "../errors.js";

/** Where the agent keeps its files when EDGE_SIGNIN_STATE_DIR is not set (relative to the working directory). */
export const DEFAULT_STATE_DIR = "./state";

/** Exit code of a state directory the agent cannot or must not use: a setting to fix, as a ConfigError's. */
export const STATE_DIR_EXIT_CODE = 2;

/**
 * The state directory as configured, read without the rest of the configuration: `edge-signin health` needs
 * nothing else.
 */
export function configuredStateDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env["EDGE_SIGNIN_STATE_DIR"] || DEFAULT_STATE_DIR;
}

/**
 * Makes sure the state directory exists, is private (created 0700 whatever the umask) and is the agent's alone.
 * What is in it decides what the agent publishes and whom it signs in as (token cache, outbox, the provider's
 * metadata): a directory others can write is refused, as OpenSSH refuses a `~/.ssh` others can write, rather
 * than trusted.
 * @throws StartupError (exit code {@link STATE_DIR_EXIT_CODE}) naming EDGE_SIGNIN_STATE_DIR and the problem.
 */
export function prepareStateDir(dir: string): void {
  const refuse = (problem: string): never => {
    throw new StartupError(`EDGE_SIGNIN_STATE_DIR: ${dir} ${problem}`, STATE_DIR_EXIT_CODE);
  };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    // EEXIST: something that is not a directory is in the way; said below.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EEXIST") refuse(`cannot be created (${code ?? "error"})`);
  }
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(dir);
  } catch (error) {
    return refuse(`cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (!stat.isDirectory()) refuse("is not a directory");
  if ((stat.mode & 0o022) !== 0)
    refuse(
      `can be written by ${stat.mode & 0o002 ? "every user" : "its group"} (mode ${(stat.mode & 0o7777).toString(8)}); ` +
        `it must be the agent's alone: chmod go-w ${dir}`,
    );
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0)
    refuse(
      `belongs to another user (uid ${stat.uid}, the agent runs as ${uid}); chown it to the agent's user`,
    );
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    refuse("is not writable by the agent's user");
  }
}
