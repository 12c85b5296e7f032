import { Agent } from "../agent.js";
import { loadConfig } from "../config.js";
import { createLogger } from "../logger.js";

/** docker stop waits 10 s before SIGKILL; the agent promises to be gone within 5. */
const SHUTDOWN_DEADLINE_MS = 4_500;

/** Runs the agent until SIGTERM or SIGINT; resolves with the process exit code. */
export async function runAgent(): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const agent = new Agent({ config, logger: log });
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
