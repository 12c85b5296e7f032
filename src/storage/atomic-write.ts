import { randomBytes } from "node:crypto";
import { closeSync, constants, openSync, renameSync, rmSync, statfsSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Room an optional file (the code cache, the health file) must leave free in STATE_DIR after it is written
 * (or a quarter of a smaller file system): the token cache (a few KiB, twice over while it is replaced) and the
 * outbox come first, so an optional file never takes the last free blocks they need.
 */
export const ESSENTIAL_RESERVE_BYTES = 64 * 1024;

const WRITE_NEW_NO_FOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export interface AtomicWriteOptions {
  /** File mode of the new file (0600 by default: STATE_DIR holds tokens and claims). */
  readonly mode?: number;
  /**
   * An optional file yields to the essential ones: it is not written when it would leave less than
   * {@link ESSENTIAL_RESERVE_BYTES} free, and the error says so (code `ENOSPC`).
   */
  readonly optional?: boolean;
}

/** Thrown for an optional file that would eat into the essential reserve (code ENOSPC, like a full disk). */
export class ReserveError extends Error {
  override readonly name = "ReserveError";
  readonly code = "ENOSPC";
}

/**
 * Replaces `path` atomically: a temp file beside it, written whole, then renamed over it, so a reader or a crash
 * never sees half a file. Whatever fails, the temp file is removed (a full disk must not keep a half-written temp
 * file that takes the space the next write needs). @throws the file system's error (ENOSPC for a full disk).
 */
export function writeFileAtomicSync(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  if (options.optional) assertRoomFor(dirname(path), bytes.byteLength);
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    // Created here and now (O_EXCL), never through a link planted at its name (O_NOFOLLOW).
    const fd = openSync(temp, WRITE_NEW_NO_FOLLOW, options.mode ?? 0o600);
    try {
      let written = 0;
      while (written < bytes.byteLength) written += writeSync(fd, bytes, written);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** True for the errors a full file system (or quota) gives. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function assertRoomFor(dir: string, bytes: number): void {
  let free: number;
  let reserve: number;
  try {
    const stats = statfsSync(dir);
    free = stats.bavail * stats.bsize;
    reserve = Math.min(ESSENTIAL_RESERVE_BYTES, (stats.blocks * stats.bsize) / 4);
  } catch {
    // statfs is unavailable (an exotic file system): write, as before.
    return;
  }
  if (free - bytes < reserve)
    throw new ReserveError(
      `only ${free} bytes free in ${dir}; an optional file of ${bytes} bytes would leave less than the ` +
        `${reserve} kept for the token cache and the outbox`,
    );
}
