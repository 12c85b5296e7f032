import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync } from "node:fs";
import { open } from "node:fs/promises";

/**
 * Reading files in STATE_DIR as the untrusted input they are: anything may sit at a path the agent owns (a
 * directory, a FIFO, a device, a file of gigabytes, a mount that never answers), and none of it may crash the
 * agent, hang it, or make it start again and again over the same file.
 */
export type StateFileRead =
  | { readonly status: "ok"; readonly data: Buffer }
  | { readonly status: "missing" }
  /** Not a regular file, too large, unreadable, or no answer in time; `problem` says which, for a log line. */
  | { readonly status: "bad"; readonly problem: string };

/** Time a read may take before the file counts as bad (a hung network mount, a stuck device). */
export const STATE_FILE_READ_TIMEOUT_MS = 5_000;

// O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer; for a regular file it
// changes nothing. The type check on the open descriptor then refuses it.
// Non-blocking, so a FIFO cannot hang the open; no-follow, so a link planted in STATE_DIR is refused (ELOOP).
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

/** Reads `path` whole if it is a regular file of at most `maxBytes`. Never throws, never blocks on a FIFO. */
export function readBoundedFileSync(path: string, maxBytes: number): StateFileRead {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (error) {
    return failed(error);
  }
  try {
    const problem = judge(fstatSync(fd), maxBytes);
    if (problem) return { status: "bad", problem };
    return bounded(readFileSync(fd), maxBytes);
  } catch (error) {
    return failed(error);
  } finally {
    closeSync(fd);
  }
}

/**
 * The asynchronous {@link readBoundedFileSync}, also bounded in time: a read that has not finished within
 * `timeoutMs` is given up on (the file counts as bad), so a stuck mount never holds up a start or a SIGTERM.
 */
export async function readBoundedFile(
  path: string,
  maxBytes: number,
  timeoutMs: number = STATE_FILE_READ_TIMEOUT_MS,
): Promise<StateFileRead> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<StateFileRead>((resolve) => {
    timer = setTimeout(
      () => resolve({ status: "bad", problem: `no answer within ${timeoutMs / 1000} s` }),
      timeoutMs,
    );
    timer.unref();
  });
  try {
    return await Promise.race([readBounded(path, maxBytes), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readBounded(path: string, maxBytes: number): Promise<StateFileRead> {
  let handle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (error) {
    return failed(error);
  }
  try {
    const problem = judge(await handle.stat(), maxBytes);
    if (problem) return { status: "bad", problem };
    return bounded(await handle.readFile(), maxBytes);
  } catch (error) {
    return failed(error);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The size was checked before the read; a file that grew past the limit meanwhile is refused all the same. */
function bounded(data: Buffer, maxBytes: number): StateFileRead {
  return data.length > maxBytes
    ? { status: "bad", problem: `larger than ${maxBytes} bytes` }
    : { status: "ok", data };
}

function judge(stat: { isFile(): boolean; isDirectory(): boolean; size: number }, maxBytes: number) {
  if (stat.isDirectory()) return "a directory, not a file";
  if (!stat.isFile()) return "not a regular file (a FIFO, socket or device)";
  if (stat.size > maxBytes) return `${stat.size} bytes, more than the limit of ${maxBytes}`;
  return undefined;
}

function failed(error: unknown): StateFileRead {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return { status: "missing" };
  return { status: "bad", problem: `unreadable (${code ?? String(error)})` };
}

/**
 * Moves a bad state file (or whatever sits at its path) aside as `{path}.corrupt-{time}`, so the next start
 * does not meet it again. @returns the new path, or undefined when even that failed (the reason is returned too).
 */
export function moveAsideSync(path: string): { movedTo?: string; error?: string } {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  try {
    renameSync(path, aside);
    return { movedTo: aside };
  } catch (error) {
    return { error: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
}
