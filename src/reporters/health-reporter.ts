import { closeSync, constants, ftruncateSync, openSync, writeSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import type { AgentEvents, AgentState } from "../events.js";
import { subscribe, type Reporter } from "./reporter.js";
import { processStartTime } from "../storage/process-identity.js";
import { isDiskFull, writeFileAtomicSync } from "../storage/atomic-write.js";

/** The file `edge-signin health` reads, inside `STATE_DIR` (the one writable place in the container). */
export const HEALTH_FILE_NAME = "health.json";

/** What the agent says about itself, rewritten on every change and on every heartbeat. */
export interface HealthFile {
  readonly pid: number;
  /**
   * When the process `pid` started (Linux: /proc/{pid}/stat field 22, clock ticks since boot), so `health` can
   * tell the agent from an unrelated process that got its pid after it died. Absent where /proc is not.
   */
  readonly pidStart?: string;
  readonly state: AgentState;
  /** When `state` began (ISO 8601). */
  readonly since: string;
  readonly broker: "connected" | "disconnected";
  /** When `broker` last changed (ISO 8601). */
  readonly brokerSince: string;
  /** Written by a timer: a stale heartbeat means a stuck or frozen process. */
  readonly heartbeatAt: string;
  readonly heartbeatSeconds: number;
  /** MQTT version of the broker connection when it last came up: 5, or 4 (3.1.1). */
  readonly protocolVersion?: 4 | 5;
  /** Why the agent stopped connecting to its broker for good (a client-id conflict): unhealthy, with this reason. */
  readonly problem?: string;
  /** Between codes: when the next one comes (see StateChange.nextCodeAt). */
  readonly nextCodeAt?: string;
  /** See StateChange.clockSkewSeconds. */
  readonly clockSkewSeconds?: number;
  /** See StateChange.storage. */
  readonly storage?: "full";
}

/**
 * Keeps `STATE_DIR/health.json` current so a container health check can read the agent's status
 * without a port, a network client or any tool besides node. Writes are atomic (write, then rename),
 * so a reader never sees half a file.
 */
export class HealthReporter implements Reporter {
  readonly name = "health";
  readonly path: string;
  private unsubscribers: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();
  private warned = false;
  private status: Omit<HealthFile, "heartbeatAt">;
  /** The kind of the problem in `status`, so only its own end clears it. */
  private problemKind: string | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.path = join(stateDir, HEALTH_FILE_NAME);
    const now = new Date().toISOString();
    const pidStart = processStartTime(process.pid);
    this.status = {
      pid: process.pid,
      ...(pidStart !== undefined ? { pidStart } : {}),
      state: "starting",
      since: now,
      broker: "disconnected",
      brokerSince: now,
      heartbeatSeconds: intervalMs / 1000,
    };
  }

  async start(events: EventEmitter<AgentEvents>): Promise<void> {
    const onError = (error: unknown) => this.log.error({ err: error }, "health reporter failed");
    await mkdir(this.stateDir, { recursive: true });
    this.unsubscribers = [
      subscribe(
        events,
        "state",
        (change) => {
          // Only what the change says: a field it leaves out (nextCodeAt...) no longer holds.
          const rest = { ...this.status };
          delete rest.nextCodeAt;
          delete rest.clockSkewSeconds;
          delete rest.storage;
          this.status = {
            ...rest,
            state: change.state,
            since: change.since,
            ...(change.nextCodeAt !== undefined ? { nextCodeAt: change.nextCodeAt } : {}),
            ...(change.clockSkewSeconds !== undefined ? { clockSkewSeconds: change.clockSkewSeconds } : {}),
            ...(change.storage !== undefined ? { storage: change.storage } : {}),
          };
          this.write();
        },
        onError,
      ),
      subscribe(
        events,
        "broker",
        ({ connected, protocolVersion, problem, problemOver }) => {
          if (problem) {
            this.problemKind = problem.kind;
            this.update({ problem: problem.message });
          } else if (problemOver !== undefined && problemOver === this.problemKind) {
            this.problemKind = undefined;
            this.update({ problem: undefined });
          }
          if (protocolVersion && protocolVersion !== this.status.protocolVersion)
            this.update({ protocolVersion });
          const broker = connected ? "connected" : "disconnected";
          // mqtt.js reports every failed reconnect: keep the time the link first went down.
          if (broker !== this.status.broker) this.update({ broker, brokerSince: new Date().toISOString() });
        },
        onError,
      ),
    ];
    this.write();
    // Unref'd: the heartbeat must never be what keeps the process alive.
    this.timer = setInterval(() => this.write(), this.intervalMs).unref();
    await this.writes;
  }

  /** A stopped agent is not a healthy one: the file goes with it. */
  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    clearInterval(this.timer);
    this.timer = undefined;
    await this.writes;
    await rm(this.path, { force: true });
  }

  private update(change: Partial<HealthFile>): void {
    this.status = { ...this.status, ...change };
    this.write();
  }

  /**
   * Serialised, so an older status can never overwrite a newer one. The health file is optional: it yields to
   * the token cache and the outbox (writeFileAtomicSync's reserve). When that leaves no room for a new copy, the
   * existing file is overwritten in place (its blocks are already allocated), so a nearly full disk still has a
   * heartbeat instead of a health check that calls the agent stuck.
   */
  private write(): void {
    const text = `${JSON.stringify({ ...this.status, heartbeatAt: new Date().toISOString() } satisfies HealthFile)}\n`;
    this.writes = this.writes.then(() => {
      try {
        try {
          writeFileAtomicSync(this.path, text, { optional: true, mode: 0o600 });
        } catch (error) {
          if (!isDiskFull(error)) throw error;
          overwriteInPlace(this.path, text);
        }
        this.warned = false;
      } catch (error) {
        // Once per outage: a full or read-only disk must not flood the log every heartbeat.
        if (!this.warned) this.log.warn({ err: error, path: this.path }, "cannot write the health file");
        this.warned = true;
      }
    });
  }
}

/** Rewrites an existing file's contents without a temp file (no new blocks needed for a small file). */
function overwriteInPlace(path: string, text: string): void {
  // Never through a link planted at the health file's name.
  const fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const bytes = Buffer.from(text, "utf8");
    writeSync(fd, bytes, 0, bytes.length, 0);
    ftruncateSync(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}
