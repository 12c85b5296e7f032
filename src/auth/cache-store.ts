import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import type { Logger } from "pino";
import { fsyncPath } from "../storage/fsync.js";
import { StartupError } from "../errors.js";
import { decodeSealingKey, looksSealed, open as openEnvelope, seal } from "../crypto/seal.js";
import { isDiskFull, writeFileAtomicSync } from "../storage/atomic-write.js";
import { moveAsideSync, readBoundedFile } from "../storage/state-file.js";
import { describeBytes } from "../http/bounded-body.js";

export const CACHE_FILE = "token-cache.json";
/**
 * A token cache for one device is a few KiB, but a person in tens of thousands of groups brings ID and access
 * tokens of a few MB each (a token response may be up to MAX_TOKEN_RESPONSE_BYTES, 8 MiB, and sealing adds a third
 * for base64). Room for that, and still a bound: anything past this is not a token cache.
 */
export const MAX_CACHE_BYTES = 16 * 1024 * 1024;

/** The configured cache key cannot open the cache (or none is set for an encrypted cache). */
export class CacheKeyError extends StartupError {
  override readonly name = "CacheKeyError";
  constructor(message: string) {
    super(message, 2);
  }
}

export interface TokenCacheStoreOptions {
  readonly stateDir: string;
  /** `EDGE_SIGNIN_CACHE_KEY` as configured (base64 or hex of 32 bytes); undefined: the file is plain JSON. */
  readonly key: string | undefined;
  readonly log: Logger;
  /** Hears how each write went: `ok`, or `disk_full` (ENOSPC, EDQUOT), or `failed` for other errors. */
  readonly onWrite?: (outcome: "ok" | "disk_full" | "failed") => void;
}

/**
 * MSAL's token cache, kept in `STATE_DIR/token-cache.json` through MSAL's cache plugin hooks. The agent holds
 * the state directory's lock, so this is the only writer: the file is read once at `load()` and afterwards
 * only written, atomically (temp file, fsync, rename), mode 0600, sealed with AES-256-GCM when a key is set.
 */
export class TokenCacheStore implements ICachePlugin {
  readonly path: string;
  private readonly key: Buffer | undefined;
  /** MSAL's serialised cache as last read or written; undefined until there is one. */
  private contents: string | undefined;
  /** The background fsync of the last writes, if one is running, and whether a write came after it began. */
  private syncing: Promise<void> | undefined;
  private unsynced = false;

  constructor(private readonly options: TokenCacheStoreOptions) {
    this.path = join(options.stateDir, CACHE_FILE);
    this.key = options.key === undefined ? undefined : decodeSealingKey(options.key);
    if (options.key !== undefined && !this.key)
      throw new CacheKeyError(
        "EDGE_SIGNIN_CACHE_KEY: expected 32 bytes as base64 (44 characters) or hex (64)",
      );
  }

  /**
   * Reads the cache file. A missing file is an empty cache; a damaged one is moved aside (the agent starts
   * signed out); an encrypted one that the key cannot open stops the agent, because signing the person out
   * over a configuration mistake would lose their session for nothing.
   * @throws CacheKeyError
   */
  async load(): Promise<void> {
    await mkdir(this.options.stateDir, { recursive: true });
    // Size-limited, regular files only, bounded in time: a FIFO, a directory or a huge file here is moved
    // aside with a warning, never a crash loop or a hang.
    const read = await readBoundedFile(this.path, MAX_CACHE_BYTES);
    if (read.status === "missing") return;
    if (read.status === "bad") {
      await this.moveAside(read.problem);
      return;
    }
    const text = read.data.toString("utf8");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      await this.moveAside("not JSON (truncated or damaged)");
      return;
    }
    if (looksSealed(parsed)) {
      if (!this.key)
        throw new CacheKeyError(
          `EDGE_SIGNIN_CACHE_KEY: the token cache ${this.path} is encrypted; set the key it was written with`,
        );
      const opened = openEnvelope(parsed, this.key);
      if (!opened.ok) {
        if (opened.problem === "wrong_key")
          throw new CacheKeyError(
            `EDGE_SIGNIN_CACHE_KEY: this key does not open the token cache ${this.path} (it was written with another key)`,
          );
        if (opened.problem === "unsupported")
          throw new CacheKeyError(
            `EDGE_SIGNIN_CACHE_KEY: the token cache ${this.path} was written by a newer edge-signin`,
          );
        await this.moveAside("encrypted contents damaged");
        return;
      }
      parsed = safeParse(opened.plaintext);
      if (!isCacheShape(parsed)) {
        await this.moveAside("decrypted contents are not a token cache");
        return;
      }
      this.contents = opened.plaintext;
      return;
    }
    if (!isCacheShape(parsed)) {
      await this.moveAside("not a token cache");
      return;
    }
    this.contents = text;
    // A plain cache and a key now: seal it at once rather than leave it readable until the next sign-in.
    if (this.key) {
      this.options.log.info({ path: this.path }, "encrypting the existing token cache");
      this.write(text);
    }
  }

  /** Whether the last read or write left anything in the cache. */
  get isEmpty(): boolean {
    return this.contents === undefined;
  }

  async beforeCacheAccess(context: TokenCacheContext): Promise<void> {
    if (this.contents !== undefined) context.tokenCache.deserialize(this.contents);
    return Promise.resolve();
  }

  afterCacheAccess(context: TokenCacheContext): Promise<void> {
    if (!context.cacheHasChanged) return Promise.resolve();
    const contents = context.tokenCache.serialize();
    this.contents = contents;
    try {
      // Synchronous, so two writes can never race to the rename.
      const written = this.write(contents);
      this.options.onWrite?.(written ? "ok" : "failed");
    } catch (error) {
      // The session stays good in memory; only a restart would lose it. Say so, do not fail the sign-in.
      const full = isDiskFull(error);
      this.options.log.error(
        { err: { message: (error as Error).message }, path: this.path, diskFull: full },
        full
          ? "disk full: could not write the token cache; free space in STATE_DIR or a restart will need a new sign-in"
          : "could not write the token cache; a restart will need a new sign-in",
      );
      this.options.onWrite?.(full ? "disk_full" : "failed");
    }
    return Promise.resolve();
  }

  /** Waits for the last write to reach the disk (before the lock is released). */
  async flush(): Promise<void> {
    while (this.syncing) await this.syncing;
  }

  /**
   * Replaces the file atomically (temp file, rename): once this returns the new cache survives a crash or a
   * SIGKILL. Synchronous on purpose: a few KB, and an asynchronous write would queue in libuv's thread pool
   * behind other work (in a sign-in storm, hundreds of fsyncs) while the sign-in waits for it. Forcing it onto
   * the disk (fsync of the file, then of the directory for the rename) follows in the background, so the
   * sign-in and its `authenticated` event do not wait ~10 ms for it; `flush()` waits.
   * @returns false (after a warning) when the cache is over MAX_CACHE_BYTES and was not written.
   */
  private write(contents: string): boolean {
    const data = this.key ? seal(contents, this.key) : contents;
    const bytes = Buffer.byteLength(data);
    // Never write what the next start would move aside as damaged: the session lives on in memory only.
    if (bytes > MAX_CACHE_BYTES) {
      this.options.log.warn(
        { path: this.path, bytes, limitBytes: MAX_CACHE_BYTES },
        `the token cache is larger than ${describeBytes(MAX_CACHE_BYTES)}; not written, a restart will need a new sign-in`,
      );
      return false;
    }
    writeFileAtomicSync(this.path, data, { mode: 0o600 });
    this.unsynced = true;
    this.syncing ??= this.syncToDisk().finally(() => (this.syncing = undefined));
    return true;
  }

  /** Forces the file and its directory entry onto the disk, again while writes keep coming during it. */
  private async syncToDisk(): Promise<void> {
    try {
      while (this.unsynced) {
        this.unsynced = false;
        await fsyncPath(this.path);
        await fsyncPath(this.options.stateDir);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        this.options.log.warn(
          { err: { message: (error as Error).message }, path: this.path },
          "could not force the token cache onto the disk; a power cut may lose the session",
        );
    }
  }

  private async moveAside(problem: string): Promise<void> {
    const { movedTo, error } = moveAsideSync(this.path);
    this.options.log.warn(
      { path: this.path, problem, ...(movedTo ? { movedTo } : { moveError: error }) },
      movedTo
        ? "token cache unreadable; moved aside, starting signed out"
        : "token cache unreadable and could not be moved aside; starting signed out",
    );
    return Promise.resolve();
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** MSAL's serialised cache is an object of sections (`Account`, `RefreshToken`, ...), each an object. */
function isCacheShape(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((section) => typeof section === "object" && section !== null);
}
