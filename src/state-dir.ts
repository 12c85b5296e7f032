/** Where the agent keeps its files when EDGE_SIGNIN_STATE_DIR is not set (relative to the working directory). */
export const DEFAULT_STATE_DIR = "./state";

/** The V8 code cache of the agent's bundle, in the state directory (src/launch.ts, src/code-cache.ts). */
export const CODE_CACHE_FILE = "code-cache.bin";

/**
 * The state directory as configured, read without the rest of the configuration: the launcher needs it before
 * anything else is loaded, and `edge-signin health` needs nothing else.
 */
export function configuredStateDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env["EDGE_SIGNIN_STATE_DIR"] || DEFAULT_STATE_DIR;
}
