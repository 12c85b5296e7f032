import { join } from "node:path";
import * as z from "zod/mini";
import { AGENT_STATES } from "../events.js";
import { HEALTH_FILE_NAME, type HealthFile } from "../reporters/health-reporter.js";
import { configuredStateDir } from "../storage/state-dir.js";
import { processStartTime } from "../storage/process-identity.js";
import { readBoundedFile } from "../storage/state-file.js";
import { escapeControls, MAX_MESSAGE_CHARS } from "../util/bounded.js";

/** A health file is a few hundred bytes; anything far larger is not one. */
const MAX_HEALTH_FILE_BYTES = 64 * 1024;

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
  pidStart: z.optional(z.string()),
  nextCodeAt: z.optional(z.iso.datetime()),
  clockSkewSeconds: z.optional(z.number()),
  storage: z.optional(z.literal("full")),
}) satisfies z.ZodMiniType<HealthFile>;

/**
 * What became of the process a health file names: `agent` (alive, and the same process that wrote the file),
 * `gone`, or `other` (alive, but a different process that got the pid after the agent died).
 */
export type ProcessCheck = "agent" | "gone" | "other";

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
  checkProcess: (pid: number, pidStart: string | undefined) => ProcessCheck,
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
  const process = checkProcess(health.pid, health.pidStart);
  if (process === "gone") {
    return unhealthy(`the agent (pid ${health.pid}) is gone; last heartbeat ${ago(heartbeatAge)}`);
  }
  if (process === "other") {
    return unhealthy(
      `pid ${health.pid} is not the edge-signin agent that wrote ${path} (it died; another process has its pid)`,
    );
  }
  if (heartbeatAge > limitMs) {
    return unhealthy(
      `last heartbeat ${ago(heartbeatAge)} (expected every ${health.heartbeatSeconds} s): the agent is stuck`,
    );
  }
  // The file is bounded (64 KiB); the line printed is kept to one screenful.
  if (health.problem) return unhealthy(health.problem.slice(0, MAX_MESSAGE_CHARS));
  const brokerDown = now - Date.parse(health.brokerSince);
  if (health.broker === "disconnected" && brokerDown > limitMs) {
    return unhealthy(`the broker has been unreachable for ${seconds(brokerDown)} s`);
  }
  const notes = [
    health.nextCodeAt !== undefined ? `waiting, next code at ${health.nextCodeAt}` : undefined,
    health.clockSkewSeconds !== undefined
      ? `device clock ${Math.abs(health.clockSkewSeconds)} s ${health.clockSkewSeconds > 0 ? "behind" : "ahead of"} the identity provider's`
      : undefined,
    // Not unhealthy: restarting the agent would lose the session it cannot save.
    health.storage === "full"
      ? "warning: STATE_DIR is full, the session will not survive a restart"
      : undefined,
  ].filter((note) => note !== undefined);
  return {
    healthy: true,
    reason: escapeControls(
      `healthy: state ${health.state} since ${health.since}, broker ${health.broker}${health.protocolVersion ? ` (MQTT ${health.protocolVersion === 5 ? "5" : "3.1.1"})` : ""}, heartbeat ${ago(heartbeatAge)}` +
        notes.map((note) => `; ${note}`).join(""),
    ),
  };
}

/** `edge-signin health`: exit 0 when healthy, 1 otherwise (Docker's HEALTHCHECK reserves other codes). */
export async function runHealth(
  options: { file?: string },
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const path = options.file ?? join(configuredStateDir(env), HEALTH_FILE_NAME);
  // Bounded in size and time, regular files only: a FIFO here must not hang the container's health check.
  const read = await readBoundedFile(path, MAX_HEALTH_FILE_BYTES);
  const verdict =
    read.status === "bad"
      ? unhealthy(`cannot read the health file ${path}: ${read.problem}`)
      : judgeHealth(
          read.status === "ok" ? read.data.toString("utf8") : undefined,
          path,
          Date.now(),
          checkProcess,
        );
  process.stdout.write(`${verdict.reason}\n`);
  return verdict.healthy ? 0 : 1;
}

/**
 * Where /proc is, the start time recorded in the health file must match the live process's: a pid reused by
 * another process (the agent died, something else started) is not the agent. Elsewhere, existence only.
 */
function checkProcess(pid: number, pidStart: string | undefined): ProcessCheck {
  if (!isAlive(pid)) return "gone";
  if (pidStart === undefined) return processStartTime(process.pid) === undefined ? "agent" : "other";
  const current = processStartTime(pid);
  if (current === undefined) return processStartTime(process.pid) === undefined ? "agent" : "gone";
  return current === pidStart ? "agent" : "other";
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

/** The reason is printed to a terminal or `docker inspect`: what came from the file (or its path) is shown, not obeyed. */
function unhealthy(reason: string): HealthVerdict {
  return { healthy: false, reason: escapeControls(`unhealthy: ${reason}`) };
}

function seconds(ms: number): number {
  return Math.max(0, Math.round(ms / 1000));
}

function ago(ms: number): string {
  return `${seconds(ms)} s ago`;
}
