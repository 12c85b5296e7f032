/** Where the agent keeps its files when EDGE_SIGNIN_STATE_DIR is not set (relative to the working directory). */
export const DEFAULT_STATE_DIR = "./state";

/** The state directory as configured, read without the rest of the configuration (the launcher needs it first). */
export function configuredStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env["EDGE_SIGNIN_STATE_DIR"] || DEFAULT_STATE_DIR;
}
