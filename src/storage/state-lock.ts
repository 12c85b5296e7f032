import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { dirname, resolve } from "node:path";
import { StartupError } from "../errors.js";
import { bootId, processStartedAtMs, processStartTime } from "./process-identity.js";
import { readBoundedFileSync } from "./state-file.js";

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

/** What `agent.lock` says: the owner's pid, and (on Linux) the boot and the process start time that name it. */
export interface LockOwner {
  readonly pid: number;
  /** /proc/sys/kernel/random/boot_id when the lock was taken. */
  readonly boot?: string;
  /** Field 22 of /proc/{pid}/stat: with the boot, names one process for good (a pid is reused). */
  readonly start?: string;
  /** Random: tells this lock from any other, for the take-over and for release(). */
  readonly nonce?: string;
  /** A lock of an older version (a bare pid): when it was written (the file's mtime), in ms since the epoch. */
  readonly writtenAtMs?: number;
}

/**
 * Lock files held by this process. A pid alone cannot tell "a second agent in this process" from "the agent
 * that had this pid before a restart" (in a container the agent is often pid 1 every time), so the process
 * remembers its own locks.
 */
const heldHere = new Set<string>();

/** A take-over claim older than this was left by a process that died while taking over (it takes microseconds). */
const ABANDONED_CLAIM_MS = 10_000;
/** Attempts at the lock before giving up (each one a stale lock taken over, or a claim waited for). */
const ATTEMPTS = 20;
const CLAIM_WAIT_MS = 25;

/**
 * One agent per state directory. `agent.lock` names its owner by pid, boot id and process start time, so a lock
 * left by a crash, SIGKILL or a power cut is recognised as stale whatever process has that pid now (after a
 * reboot, or in a container where the agent is pid 1 every time and the new pid 1 started later). Node has no
 * flock() (fs-ext and the like are native add-ons that need a compiler on the device), so the kernel's word comes
 * from /proc instead; without /proc (not Linux) a lock is live while its pid is.
 *
 * Every step is atomic: the lock is written to a file of its own and hard-linked into place (fails if one is
 * there); a stale lock is removed only under a claim named after that very lock, created exclusively, so of
 * several agents started together over it exactly one removes it and one (not necessarily the same) links its own.
 * The lock is removed on a clean stop and, synchronously, when the process exits any other way it can notice.
 */
export class StateDirLock {
  readonly path: string;
  private held: LockOwner | undefined;
  private readonly onExit = () => this.release();

  constructor(stateDir: string) {
    this.path = resolve(stateDir, LOCK_FILE);
  }

  /** @throws StateDirLockedError when a live agent holds the directory. */
  acquire(): void {
    if (this.held) return;
    mkdirSync(dirname(this.path), { recursive: true });
    const mine = ownIdentity();
    const staged = `${this.path}.${process.pid}.${mine.nonce}.new`;
    const fd = openSync(staged, "wx", 0o600);
    try {
      writeSync(fd, `${JSON.stringify(mine)}\n`);
    } finally {
      closeSync(fd);
    }
    try {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        try {
          linkSync(staged, this.path);
          this.held = mine;
          heldHere.add(this.path);
          process.once("exit", this.onExit);
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        const current = this.read();
        if (!current) continue;
        if (current.owner !== undefined && this.isLive(current.owner))
          throw new StateDirLockedError(this.path, current.owner.pid);
        this.removeStale(current.key);
      }
    } finally {
      unlinkQuietly(staged);
    }
    throw new StateDirLockedError(this.path, this.read()?.owner?.pid ?? 0);
  }

  release(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    heldHere.delete(this.path);
    process.off("exit", this.onExit);
    // Only our own: a lock taken over by another agent (ours judged stale, say) is theirs to remove.
    if (this.read()?.owner?.nonce === held.nonce) unlinkQuietly(this.path);
  }

  /** Removes the lock whose key is `key`, if it is still the one there, under an exclusive claim on it. */
  private removeStale(key: string): void {
    const claim = `${this.path}.takeover-${key}`;
    try {
      closeSync(openSync(claim, "wx", 0o600));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // Another agent is taking this lock over right now: look again shortly. One that died doing it left the
      // claim behind; it is removed once old (the take-over itself takes microseconds).
      const age = ageMs(claim);
      if (age !== undefined && age > ABANDONED_CLAIM_MS) unlinkQuietly(claim);
      else sleepSync(CLAIM_WAIT_MS);
      return;
    }
    try {
      // Still the lock judged stale? One that took it over first has put its own there (or none yet).
      if (this.read()?.key === key) unlinkQuietly(this.path);
    } finally {
      unlinkQuietly(claim);
    }
  }

  /** The lock there now, with a key naming this very file; undefined when there is none. */
  private read(): { owner: LockOwner | undefined; key: string } | undefined {
    let stat: Stats;
    try {
      stat = lstatSync(this.path);
    } catch {
      return undefined;
    }
    // A lock is a line of JSON; a FIFO or anything else here must not hang the start (it is then stale).
    const read = readBoundedFileSync(this.path, 512);
    const text = read.status === "ok" ? read.data.toString("utf8") : "";
    const key = createHash("sha256")
      .update(`${stat.ino}:${stat.mtimeMs}:${stat.size}:${text}`)
      .digest("hex")
      .slice(0, 24);
    return { owner: parseOwner(text, stat.mtimeMs), key };
  }

  private isLive(owner: LockOwner): boolean {
    const boot = bootId();
    // Taken in another boot: a power cut or a reboot came between, whatever has that pid now.
    if (owner.boot !== undefined && boot !== undefined && owner.boot !== boot) return false;
    if (owner.start !== undefined) {
      const start = processStartTime(owner.pid);
      // With /proc, the pid and its start time name one process: another process with the pid is not the owner.
      if (start !== undefined || boot !== undefined) {
        if (start !== owner.start) return false;
        return owner.pid === process.pid ? heldHere.has(this.path) : true;
      }
    }
    if (owner.pid === process.pid) return heldHere.has(this.path);
    if (!pidExists(owner.pid)) return false;
    // A lock of an older version names a pid only: a process that started after the lock was written cannot be
    // the one that wrote it (2 s for /proc's whole-second boot time).
    const startedAt = processStartedAtMs(owner.pid);
    if (startedAt !== undefined && owner.writtenAtMs !== undefined && startedAt > owner.writtenAtMs + 2_000)
      return false;
    return true;
  }
}

function ownIdentity(): LockOwner & { readonly nonce: string } {
  const boot = bootId();
  const start = processStartTime(process.pid);
  return {
    pid: process.pid,
    ...(boot !== undefined ? { boot } : {}),
    ...(start !== undefined ? { start } : {}),
    nonce: randomBytes(8).toString("hex"),
  };
}

/** The owner a lock names: JSON as written now, or a bare pid as older versions wrote; undefined when neither. */
function parseOwner(text: string, mtimeMs: number): LockOwner | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const pid = Number(trimmed);
    return Number.isSafeInteger(pid) && pid > 0 ? { pid, writtenAtMs: mtimeMs } : undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { pid, boot, start, nonce } = parsed as Record<string, unknown>;
  if (typeof pid !== "number" || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const field = (v: unknown) => (typeof v === "string" && v.length > 0 && v.length <= 64 ? v : undefined);
  const [b, s, n] = [field(boot), field(start), field(nonce)];
  return {
    pid,
    ...(b !== undefined ? { boot: b } : {}),
    ...(s !== undefined ? { start: s } : {}),
    ...(n !== undefined ? { nonce: n } : {}),
  };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else; it is alive.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ageMs(path: string): number | undefined {
  try {
    return Date.now() - lstatSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** A short synchronous pause: acquire() runs before anything else of the agent, and is synchronous. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
