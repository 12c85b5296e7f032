import { Agent } from "../agent.js";
import type { CodeCache } from "../code-cache.js";
import { loadConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { reportFailure } from "../report-failure.js";

/** docker stop waits 10 s before SIGKILL; the agent promises to be gone within 5. */
const SHUTDOWN_DEADLINE_MS = 4_500;

export interface RunAgentOptions {
  /** The code cache the launcher loaded this code with (src/launch.ts), for the debug log. */
  readonly codeCache?: CodeCache;
}

/** The `agent` command as a whole: runs the agent; a failure to start is reported in one line. Never throws. */
export async function agentCommand(options: RunAgentOptions = {}): Promise<number> {
  try {
    return await runAgent(options);
  } catch (error) {
    return reportFailure(error);
  }
}

/** Runs the agent until SIGTERM or SIGINT; resolves with the process exit code. */
export async function runAgent(options: RunAgentOptions = {}): Promise<number> {
  // Everything the agent creates (STATE_DIR, its files) is private whatever umask it was started with.
  process.umask(0o077);
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const agent = new Agent({ config, logger: log });
  if (options.codeCache) log.child({ module: "code-cache" }).debug(options.codeCache, "code cache");
  const stopped = new Promise<number>((resolve) => {
    const shutdown = (signal: NodeJS.Signals) => {
      log.info({ signal }, "shutting down");
      const deadline = setTimeout(() => {
        log.warn("shutdown deadline passed; exiting anyway");
        resolve(0);
      }, SHUTDOWN_DEADLINE_MS);
      agent.stop().then(
        () => {
          clearTimeout(deadline);
          resolve(0);
        },
        (error: unknown) => {
          log.error({ err: error }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", shutdown);
    process.once("SIGINT", shutdown);
  });
  await Promise.race([agent.start(), stopped]);
  return stopped;
}
