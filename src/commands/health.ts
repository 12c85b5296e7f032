import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import { AGENT_STATES } from "../events.js";
import { HEALTH_FILE_NAME, type HealthFile } from "../reporters/health-reporter.js";
import { configuredStateDir } from "../state-dir.js";

/** Missed heartbeats (and heartbeats' worth of broker outage) before the agent counts as unhealthy. */
export const MISSED_HEARTBEATS = 3;

const HealthFileSchema = z.object({
  pid: z.number().check(z.int(), z.positive()),
  state: z.enum(AGENT_STATES),
  since: z.iso.datetime(),
  broker: z.enum(["connected", "disconnected"]),
  brokerSince: z.iso.datetime(),
  heartbeatAt: z.iso.datetime(),
  heartbeatSeconds: z.number().check(z.positive()),
  protocolVersion: z.optional(z.union([z.literal(4), z.literal(5)])),
  problem: z.optional(z.string()),
}) satisfies z.ZodMiniType<HealthFile>;

export interface HealthVerdict {
  readonly healthy: boolean;
  /** One line for `docker inspect` and for a person. */
  readonly reason: string;
}

/**
 * Decides from the health file alone, so the check needs no port, no broker client and no configuration
 * beyond `STATE_DIR`. `contents` is undefined when the file does not exist.
 */
export function judgeHealth(
  contents: string | undefined,
  path: string,
  now: number,
  isAlive: (pid: number) => boolean,
): HealthVerdict {
  if (contents === undefined) {
    return unhealthy(`no health file at ${path}: the agent is not running (or uses another STATE_DIR)`);
  }
  let health: HealthFile;
  try {
    health = HealthFileSchema.parse(JSON.parse(contents));
  } catch {
    return unhealthy(`health file ${path} is not one the agent wrote`);
  }
  const limitMs = health.heartbeatSeconds * 1000 * MISSED_HEARTBEATS;
  const heartbeatAge = now - Date.parse(health.heartbeatAt);
  if (!isAlive(health.pid)) {
    return unhealthy(`the agent (pid ${health.pid}) is gone; last heartbeat ${ago(heartbeatAge)}`);
  }
  if (heartbeatAge > limitMs) {
    return unhealthy(
      `last heartbeat ${ago(heartbeatAge)} (expected every ${health.heartbeatSeconds} s): the agent is stuck`,
    );
  }
  if (health.problem) return unhealthy(health.problem);
  const brokerDown = now - Date.parse(health.brokerSince);
  if (health.broker === "disconnected" && brokerDown > limitMs) {
    return unhealthy(`the broker has been unreachable for ${seconds(brokerDown)} s`);
  }
  return {
    healthy: true,
    reason: `healthy: state ${health.state} since ${health.since}, broker ${health.broker}${health.protocolVersion ? ` (MQTT ${health.protocolVersion === 5 ? "5" : "3.1.1"})` : ""}, heartbeat ${ago(heartbeatAge)}`,
  };
}

/** `edge-signin health`: exit 0 when healthy, 1 otherwise (Docker's HEALTHCHECK reserves other codes). */
export async function runHealth(
  options: { file?: string },
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const path = options.file ?? join(configuredStateDir(env), HEALTH_FILE_NAME);
  let verdict: HealthVerdict;
  try {
    verdict = judgeHealth(await readFile(path, "utf8"), path, Date.now(), isAlive);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    verdict =
      code === "ENOENT"
        ? judgeHealth(undefined, path, Date.now(), isAlive)
        : unhealthy(`cannot read the health file ${path} (${code ?? String(error)})`);
  }
  process.stdout.write(`${verdict.reason}\n`);
  return verdict.healthy ? 0 : 1;
}

/** Signal 0 checks existence only; EPERM means the process exists but belongs to someone else. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function unhealthy(reason: string): HealthVerdict {
  return { healthy: false, reason: `unhealthy: ${reason}` };
}

function seconds(ms: number): number {
  return Math.max(0, Math.round(ms / 1000));
}

function ago(ms: number): string {
  return `${seconds(ms)} s ago`;
}
