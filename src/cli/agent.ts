import { Agent } from "../agent.js";
import type { CodeCache } from "./code-cache.js";
import { loadConfig, unknownSettingsWarning } from "../config/index.js";
import { createLogger } from "../util/logger.js";
import { BROKER_REFUSED_EXIT_CODE } from "../mqtt/connection-policy.js";
import { reportFailure } from "./report-failure.js";

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
  const unknown = unknownSettingsWarning(process.env);
  if (unknown) log.warn(unknown);
  const agent = new Agent({ config, logger: log });
  if (options.codeCache) log.child({ module: "code-cache" }).debug(options.codeCache, "code cache");
  // The broker refused us for good (credentials changed, banned): one line, exit code 4, never a process that
  // lingers disconnected. Before the start has finished, agent.start() rejects with the same error instead.
  let started = false;
  let refusedEarly: string | undefined;
  let stopRefused: (message: string) => void = () => undefined;
  agent.on("broker", ({ problem }) => {
    if (problem?.kind !== "refused") return;
    if (started) stopRefused(problem.message);
    else refusedEarly = problem.message;
  });
  const stopped = new Promise<number>((resolve) => {
    const stopWith = (code: number) => {
      const deadline = setTimeout(() => {
        log.warn("shutdown deadline passed; exiting anyway");
        resolve(code);
      }, SHUTDOWN_DEADLINE_MS);
      agent.stop().then(
        () => {
          clearTimeout(deadline);
          resolve(code);
        },
        (error: unknown) => {
          log.error({ err: error }, "shutdown failed");
          resolve(1);
        },
      );
    };
    const shutdown = (signal: NodeJS.Signals) => {
      log.info({ signal }, "shutting down");
      stopWith(0);
    };
    process.once("SIGTERM", shutdown);
    process.once("SIGINT", shutdown);
    stopRefused = (message) => {
      process.stderr.write(`edge-signin: ${message}\n`);
      stopWith(BROKER_REFUSED_EXIT_CODE);
    };
  });
  await Promise.race([agent.start(), stopped]);
  started = true;
  // Refused between the first connection and the end of start(): the same as after it.
  if (refusedEarly !== undefined) stopRefused(refusedEarly);
  return stopped;
}
