import type { Logger } from "pino";
import { Agent } from "../agent.js";
import type { CodeCache } from "../code-cache.js";
import { loadConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { BROKER_REFUSED_EXIT_CODE } from "../mqtt/connection-policy.js";
import { reportFailure } from "../report-failure.js";

/** docker stop waits 10 s before SIGKILL; the agent promises to be gone within 5. */
const SHUTDOWN_DEADLINE_MS = 4_500;

/** After a milestone, wait this long (the agent is idle then) before writing the code cache. */
const CODE_CACHE_DELAY_MS = 1_000;
/** The points after which the code cache is worth writing, in the order a start reaches them. */
const CODE_CACHE_MILESTONES = ["first_code", "signed_in"] as const;

export interface RunAgentOptions {
  /** The code cache the launcher loaded this code with (src/launch.ts); refreshed after the first code and sign-in. */
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
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const agent = new Agent({ config, logger: log });
  if (options.codeCache) keepCodeCache(agent, options.codeCache, log.child({ module: "code-cache" }));
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

/**
 * Writes the code cache once the code that matters has run: after the first code on the display (start-up)
 * and after the first sign-in (the approval path, compiled lazily until then), unless the cache this start
 * used already covers it: a device that reboots into the same code writes nothing. A failure costs only speed.
 */
function keepCodeCache(agent: Agent, cache: CodeCache, log: Logger): void {
  log.debug({ status: cache.status, milestone: cache.milestone, file: cache.file }, "code cache");
  const covered = new Set(
    cache.status === "used"
      ? CODE_CACHE_MILESTONES.slice(0, CODE_CACHE_MILESTONES.indexOf(cache.milestone as never) + 1)
      : [],
  );
  const saveSoon = (milestone: (typeof CODE_CACHE_MILESTONES)[number]) => {
    if (covered.has(milestone)) return;
    setTimeout(() => {
      try {
        cache.save(milestone);
        log.debug({ file: cache.file, milestone }, "code cache written");
      } catch (error) {
        log.warn(
          { err: { message: (error as Error).message }, file: cache.file },
          "cannot write the code cache",
        );
      }
    }, CODE_CACHE_DELAY_MS).unref();
  };
  agent.once("prompt", () => saveSoon("first_code"));
  agent.once("authenticated", () => saveSoon("signed_in"));
}
