import { closeSync, mkdirSync, openSync, unlinkSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { StartupError } from "../errors.js";
import { readStateFileSync } from "./state-file.js";

/** Another live agent holds the state directory: two writers would tear the token cache apart. */
export class StateDirLockedError extends StartupError {
  override readonly name = "StateDirLockedError";
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(
      `another edge-signin agent (pid ${pid}) is using the state directory ${path}; ` +
        `give each agent its own EDGE_SIGNIN_STATE_DIR`,
      3,
    );
  }
}

export const LOCK_FILE = "agent.lock";

/**
 * Lock files held by this process. A pid alone cannot tell "a second agent in this process" from "the agent
 * that had this pid before a restart" (in a container the agent is often pid 1 every time), so the process
 * remembers its own locks.
 */
const heldHere = new Set<string>();

/**
 * One agent per state directory: `agent.lock` holds the owner's pid and is created with O_EXCL. A lock whose
 * pid is dead (a crash, SIGKILL, a container restart) is stale and taken over.
 */
export class StateDirLock {
  readonly path: string;
  private held = false;

  constructor(stateDir: string) {
    this.path = resolve(stateDir, LOCK_FILE);
  }

  /** @throws StateDirLockedError when a live agent holds the directory. */
  acquire(): void {
    if (this.held) return;
    mkdirSync(dirname(this.path), { recursive: true });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(this.path, "wx", 0o600);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        this.held = true;
        heldHere.add(this.path);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const owner = this.owner();
      if (owner !== undefined && this.isLive(owner)) throw new StateDirLockedError(this.path, owner);
      // Stale: remove and race for it again; whoever creates it first wins, the other sees a live owner.
      try {
        unlinkSync(this.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    throw new StateDirLockedError(this.path, this.owner() ?? 0);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    heldHere.delete(this.path);
    try {
      if (this.owner() === process.pid) unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }

  private owner(): number | undefined {
    // A pid is a few bytes; a FIFO or anything else here must not hang the start (it is then stale).
    const read = readStateFileSync(this.path, 64);
    if (read.status !== "ok") return undefined;
    const pid = Number.parseInt(read.data.toString("utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  private isLive(pid: number): boolean {
    if (pid === process.pid) return heldHere.has(this.path);
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      // EPERM: the process exists but belongs to someone else; it is alive.
      return (error as NodeJS.ErrnoException).code === "EPERM";
    }
  }
}
