import { mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { constants, Script } from "node:vm";
import { crc32 } from "node:zlib";
import { writeFileAtomicSync } from "./storage/atomic-write.js";
import { readStateFileSync } from "./storage/state-file.js";

/** V8's code for the whole bundle is a few MiB; a bigger file is not a code cache. */
const MAX_CODE_CACHE_BYTES = 64 * 1024 * 1024;

/** What became of the code cache when the bundle was loaded. */
export type CodeCacheStatus =
  /** V8 took the cache: the bundle's functions were not parsed or compiled again. */
  | "used"
  /** No cache yet (first start, or a new bundle or Node version): compiled from source. */
  | "absent"
  /** V8 refused the cache (another V8 version or flags): compiled from source. */
  | "rejected"
  /** The file was damaged or truncated: ignored, compiled from source. */
  | "damaged";

export interface CodeCache {
  readonly status: CodeCacheStatus;
  readonly file: string;
  /** What the used cache was saved after (the `milestone` given to `save`); undefined unless `status` is used. */
  readonly milestone: string | undefined;
  /**
   * Writes V8's code for every function compiled so far (the start-up path, once it has run) to the cache
   * file, atomically, noting the milestone it was saved after. @throws the file system's error
   */
  save(milestone: string): void;
}

export interface CachedModule<T> {
  readonly exports: T;
  readonly codeCache: CodeCache;
}

/** "EScc" + format version; a file that does not start with it is not ours. */
const MAGIC = Buffer.from("EScc0001", "ascii");
const HEADER_BYTES = MAGIC.length + 4 /* crc32 */ + 2; /* key length */

/**
 * Loads a CommonJS bundle through V8 with a code cache kept on disk, the way Node 22's
 * `module.enableCompileCache()` does, but on Node 20 too: on a small device most of the agent's start-up is
 * V8 parsing and compiling the bundle, and a reboot runs the same code again.
 *
 * The cache is keyed by the bundle's size and modification time and by the Node version and architecture,
 * and guarded by a CRC-32 (release builds of V8 do not checksum a code cache, and a damaged one must never
 * reach it). Anything wrong with the file only means compiling from source, as on a first start.
 */
export function loadWithCodeCache<T>(bundleFile: string, cacheFile: string): CachedModule<T> {
  const source = readFileSync(bundleFile, "utf8");
  const stat = statSync(bundleFile);
  const key = `${process.version} ${process.arch} ${stat.size} ${stat.mtimeMs}`;
  const stored = readCache(cacheFile, key);
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundleFile,
    ...(stored.data ? { cachedData: stored.data } : {}),
    // The bundle's own `import()` calls resolve as they would in a module Node loaded itself.
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const status: CodeCacheStatus = stored.data
    ? script.cachedDataRejected === true
      ? "rejected"
      : "used"
    : stored.status;
  const module = { exports: {} as T };
  const wrapper = script.runInThisContext() as (
    exports: T,
    require: NodeJS.Require,
    module: { exports: T },
    filename: string,
    dirname: string,
  ) => void;
  wrapper(module.exports, createRequire(bundleFile), module, bundleFile, dirname(bundleFile));
  return {
    exports: module.exports,
    codeCache: {
      status,
      file: cacheFile,
      milestone: status === "used" ? stored.milestone : undefined,
      save: (milestone) => writeCache(cacheFile, `${key}\n${milestone}`, script.createCachedData()),
    },
  };
}

function readCache(
  file: string,
  key: string,
): { data?: Buffer; status: CodeCacheStatus; milestone?: string } {
  // Regular files only and bounded: a FIFO here must not hang the launcher before any signal handler exists.
  const read = readStateFileSync(file, MAX_CODE_CACHE_BYTES);
  if (read.status === "missing") return { status: "absent" };
  if (read.status === "bad") return { status: "damaged" };
  const bytes = read.data;
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    return { status: "damaged" };
  const crc = bytes.readUInt32BE(MAGIC.length);
  const keyLength = bytes.readUInt16BE(MAGIC.length + 4);
  const body = bytes.subarray(MAGIC.length + 4);
  if (bytes.length < HEADER_BYTES + keyLength || crc32(body) !== crc) return { status: "damaged" };
  const [storedKey, milestone] = body
    .subarray(2, 2 + keyLength)
    .toString("utf8")
    .split("\n");
  // Another bundle or another Node: the same as none.
  if (storedKey !== key) return { status: "absent" };
  return { data: body.subarray(2 + keyLength), status: "used", ...(milestone ? { milestone } : {}) };
}

function writeCache(file: string, key: string, data: Buffer): void {
  const keyBytes = Buffer.from(key, "utf8");
  const body = Buffer.concat([Buffer.alloc(2), keyBytes, data]);
  body.writeUInt16BE(keyBytes.length, 0);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body), 0);
  mkdirSync(dirname(file), { recursive: true });
  // Optional: never at the cost of the token cache's or the outbox's room; the temp file goes when a write fails.
  writeFileAtomicSync(file, Buffer.concat([MAGIC, crc, body]), { mode: 0o600, optional: true });
}
