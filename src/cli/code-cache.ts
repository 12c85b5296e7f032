import { createHash } from "node:crypto";
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { constants, Script } from "node:vm";
import { crc32 } from "node:zlib";

/** What became of the code cache when the bundle was loaded. */
export type CodeCacheStatus =
  /** V8 took the cache: the functions it holds were not parsed or compiled again. */
  | "used"
  /** No cache beside the bundle (a build without one): compiled from source. */
  | "absent"
  /** The cache was made for another bundle (a rebuild left it behind): ignored, compiled from source. */
  | "stale"
  /** V8 refused the cache (made by another Node version, or with other V8 flags): compiled from source. */
  | "rejected"
  /** The file was damaged or truncated: ignored, compiled from source. */
  | "damaged";

export interface CodeCache {
  readonly status: CodeCacheStatus;
  readonly file: string;
}

export interface CachedModule<T> {
  readonly exports: T;
  readonly codeCache: CodeCache;
}

/** "EScc" + format version; a file that does not start with it is not ours. */
const MAGIC = Buffer.from("EScc0002", "ascii");
const SHA256_BYTES = 32;
/** Magic, SHA-256 of the bundle, CRC-32 of V8's data. */
const HEADER_BYTES = MAGIC.length + SHA256_BYTES + 4;

/**
 * V8 flags the agent runs with, set before any code is compiled. A code cache is valid only under the flags it was
 * made with, so the build (`writeCodeCache`) and the launcher set the same ones.
 * `--liftoff-only`: undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it twice: quickly
 * (Liftoff), then again optimised (TurboFan) on a worker thread, whose ~10 MiB of compiler memory stays in that
 * thread's malloc arena for the life of the process. The agent parses a few small responses a minute.
 */
export const AGENT_V8_FLAGS = ["--liftoff-only"] as const;

/** Where the build puts the code cache of a bundle: beside it, read-only with it (never in STATE_DIR). */
export function codeCacheFileOf(bundleFile: string): string {
  return `${bundleFile}.cache`;
}

/**
 * Loads a CommonJS bundle through V8 with a code cache made at build time (scripts/bundle.ts) and shipped beside
 * the bundle, in the package or the image: on a small device most of the agent's start-up is V8 parsing and
 * compiling the bundle.
 *
 * V8 runs whatever compiled code it is handed, and checks only the length of the source it was compiled from
 * (and its own version and flags): a cache made from another script of the same length runs that script. So the
 * cache is read only from beside the bundle, never from a place the agent writes (STATE_DIR), and only when it
 * names the SHA-256 of this very bundle; a CRC-32 guards its bytes against damage (release builds of V8 do not
 * checksum a code cache, and a damaged one crashes V8). Anything wrong only means compiling from source.
 */
export function loadWithCodeCache<T>(
  bundleFile: string,
  cacheFile = codeCacheFileOf(bundleFile),
): CachedModule<T> {
  const source = readFileSync(bundleFile);
  const stored = readCache(cacheFile, source);
  const script = compile(bundleFile, source.toString("utf8"), stored.data);
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
  return { exports: module.exports, codeCache: { status, file: cacheFile } };
}

/** The bundle loaded at build time, to make its code cache once it has run as far as the build wants. */
export interface BundleForCodeCache<T> {
  readonly exports: T;
  /**
   * Writes V8's code for every function of the bundle compiled so far to the cache file, named by the bundle's
   * SHA-256, read-only. Called after a training run, it covers the functions that run first at a real start (up
   * to the first code, the sign-in), not only the module set-up.
   */
  write(): void;
}

/**
 * Build time: compiles the bundle and runs its top level (module set-up; it starts nothing), as
 * {@link loadWithCodeCache} does at run time. Run it in a fresh process with {@link AGENT_V8_FLAGS} set, under the
 * Node version that will run the bundle (the image's build stage), and call `write()` when done.
 */
export function loadForCodeCache<T>(
  bundleFile: string,
  cacheFile = codeCacheFileOf(bundleFile),
): BundleForCodeCache<T> {
  const source = readFileSync(bundleFile);
  const script = compile(bundleFile, source.toString("utf8"), undefined);
  const module = { exports: {} as T };
  (script.runInThisContext() as (...args: unknown[]) => void)(
    module.exports,
    createRequire(bundleFile),
    module,
    bundleFile,
    dirname(bundleFile),
  );
  return {
    exports: module.exports,
    write() {
      const data = script.createCachedData();
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(data), 0);
      rmSync(cacheFile, { force: true });
      writeFileSync(cacheFile, Buffer.concat([MAGIC, sha256(source), crc, data]), { mode: 0o444 });
      // Whatever the umask (the agent's training run sets 077): the agent may run as another user than the build.
      chmodSync(cacheFile, 0o444);
    },
  };
}

/** Build time: the code cache of the bundle's module set-up alone (see {@link loadForCodeCache}). */
export function writeCodeCache(bundleFile: string, cacheFile = codeCacheFileOf(bundleFile)): void {
  loadForCodeCache(bundleFile, cacheFile).write();
}

function compile(bundleFile: string, source: string, cachedData: Buffer | undefined): Script {
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundleFile,
    ...(cachedData ? { cachedData } : {}),
    // The bundle's own `import()` calls resolve as they would in a module Node loaded itself.
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
}

function readCache(file: string, source: Buffer): { data?: Buffer; status: CodeCacheStatus } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return { status: "absent" };
  }
  if (bytes.length <= HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    return { status: "damaged" };
  const bundleHash = bytes.subarray(MAGIC.length, MAGIC.length + SHA256_BYTES);
  if (!bundleHash.equals(sha256(source))) return { status: "stale" };
  const crc = bytes.readUInt32BE(MAGIC.length + SHA256_BYTES);
  const data = bytes.subarray(HEADER_BYTES);
  if (crc32(data) !== crc) return { status: "damaged" };
  return { data, status: "used" };
}

function sha256(bytes: Buffer): Buffer {
  return createHash("sha256").update(bytes).digest();
}
