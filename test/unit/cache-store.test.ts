import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TokenCacheContext } from "@azure/msal-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeSealingKey, open, seal } from "../../src/crypto/seal.js";
import { CACHE_FILE, CacheKeyError, MAX_CACHE_BYTES, TokenCacheStore } from "../../src/auth/cache-store.js";
import { bootId, processStartTime } from "../../src/storage/process-identity.js";
import { LOCK_FILE, StateDirLock, StateDirLockedError } from "../../src/storage/state-lock.js";
import { captureLogger } from "../helpers/fixture.js";

const KEY_B64 = Buffer.alloc(32, 7).toString("base64");
const KEY_HEX = Buffer.alloc(32, 9).toString("hex");
const MSAL_CACHE = JSON.stringify({
  Account: { a: { username: "alice" } },
  RefreshToken: { r: { secret: "rt" } },
});

/** The slice of MSAL's TokenCacheContext the plugin uses. */
function context(serialized: string, changed: boolean) {
  const received: string[] = [];
  const ctx = {
    cacheHasChanged: changed,
    tokenCache: { serialize: () => serialized, deserialize: (text: string) => received.push(text) },
  } as unknown as TokenCacheContext;
  return { ctx, received };
}

describe("cache encryption", () => {
  it("accepts 32 bytes as base64, base64url or hex, and nothing else", () => {
    expect(decodeSealingKey(KEY_B64)).toStrictEqual(Buffer.alloc(32, 7));
    expect(decodeSealingKey(`${KEY_HEX}\n`)).toStrictEqual(Buffer.alloc(32, 9));
    expect(decodeSealingKey(Buffer.alloc(32, 7).toString("base64url"))).toStrictEqual(Buffer.alloc(32, 7));
    for (const bad of [
      "",
      "correct horse battery staple",
      Buffer.alloc(16).toString("base64"),
      "zz".repeat(32),
    ])
      expect(decodeSealingKey(bad)).toBeUndefined();
  });

  it("tells a wrong key from damaged contents", () => {
    const key = decodeSealingKey(KEY_B64) as Buffer;
    const sealed = JSON.parse(seal("hello", key)) as Record<string, string>;
    expect(open(sealed, key)).toStrictEqual({ ok: true, plaintext: "hello" });
    expect(open(sealed, decodeSealingKey(KEY_HEX) as Buffer)).toStrictEqual({
      ok: false,
      problem: "wrong_key",
    });
    const flipped = Buffer.from(sealed["ciphertext"] ?? "", "base64");
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(open({ ...sealed, ciphertext: flipped.toString("base64") }, key)).toStrictEqual({
      ok: false,
      problem: "damaged",
    });
    expect(open({ ...sealed, version: 2 } as never, key)).toStrictEqual({
      ok: false,
      problem: "unsupported",
    });
  });
});

describe("TokenCacheStore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-cache-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes MSAL's cache atomically with mode 0600 and hands it back after a restart", async () => {
    const first = new TokenCacheStore({ stateDir: dir, key: undefined, log: captureLogger().logger });
    await first.load();
    expect(first.isEmpty).toBe(true);
    await first.afterCacheAccess(context(MSAL_CACHE, true).ctx);
    expect((await stat(join(dir, CACHE_FILE))).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toStrictEqual([CACHE_FILE]); // no temp file left behind

    const second = new TokenCacheStore({ stateDir: dir, key: undefined, log: captureLogger().logger });
    await second.load();
    const { ctx, received } = context("", false);
    await second.beforeCacheAccess(ctx);
    expect(received).toStrictEqual([MSAL_CACHE]);
  });

  it("keeps a sealed cache of several MB (a person in tens of thousands of groups) across a restart", async () => {
    const big = JSON.stringify({
      Account: { a: { username: "alice" } },
      IdToken: { i: { secret: "x".repeat(3_000_000) } },
    });
    const first = new TokenCacheStore({ stateDir: dir, key: KEY_B64, log: captureLogger().logger });
    await first.load();
    await first.afterCacheAccess(context(big, true).ctx);
    expect((await stat(join(dir, CACHE_FILE))).size).toBeGreaterThan(4_000_000);
    const second = new TokenCacheStore({ stateDir: dir, key: KEY_B64, log: captureLogger().logger });
    await second.load();
    const { ctx, received } = context("", false);
    await second.beforeCacheAccess(ctx);
    expect(received).toStrictEqual([big]);
  });

  it("does not write a cache the next start would refuse; one warning names the limit", async () => {
    const log = captureLogger();
    const outcomes: string[] = [];
    const store = new TokenCacheStore({
      stateDir: dir,
      key: undefined,
      log: log.logger,
      onWrite: (outcome) => outcomes.push(outcome),
    });
    await store.load();
    const huge = JSON.stringify({ IdToken: { i: { secret: "x".repeat(MAX_CACHE_BYTES) } } });
    await store.afterCacheAccess(context(huge, true).ctx);
    expect(await readdir(dir)).toStrictEqual([]);
    expect(outcomes).toStrictEqual(["failed"]);
    expect(log.lines().map((line) => [line["level"], line["msg"]])).toStrictEqual([
      [40, "the token cache is larger than 16 MiB; not written, a restart will need a new sign-in"],
    ]);
  });

  it("does not write when MSAL changed nothing", async () => {
    const store = new TokenCacheStore({ stateDir: dir, key: undefined, log: captureLogger().logger });
    await store.load();
    await store.afterCacheAccess(context(MSAL_CACHE, false).ctx);
    expect(await readdir(dir)).toStrictEqual([]);
  });

  it("encrypts a plain cache as soon as a key is set", async () => {
    await writeFile(join(dir, CACHE_FILE), MSAL_CACHE);
    const store = new TokenCacheStore({ stateDir: dir, key: KEY_B64, log: captureLogger().logger });
    await store.load();
    const text = await readFile(join(dir, CACHE_FILE), "utf8");
    expect(text).not.toContain("alice");
    expect(JSON.parse(text)).toMatchObject({ format: "edge-signin-token-cache", version: 1 });
  });

  it.each([
    ["empty", ""],
    ["truncated", MSAL_CACHE.slice(0, 20)],
    ["not a cache", "[1,2,3]"],
    ["sections not objects", '{"Account": 3}'],
  ])("moves a %s file aside and starts empty", async (_name, contents) => {
    await writeFile(join(dir, CACHE_FILE), contents);
    const log = captureLogger();
    const store = new TokenCacheStore({ stateDir: dir, key: undefined, log: log.logger });
    await store.load();
    expect(store.isEmpty).toBe(true);
    const files = await readdir(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^token-cache\.json\.corrupt-\d{4}-\d{2}-\d{2}T/);
    expect(log.lines().at(-1)).toMatchObject({
      level: 40,
      msg: "token cache unreadable; moved aside, starting signed out",
    });
  });

  it("moves damaged ciphertext aside but stops on a wrong or missing key", async () => {
    const key = decodeSealingKey(KEY_B64) as Buffer;
    const sealed = seal(MSAL_CACHE, key);
    const path = join(dir, CACHE_FILE);
    await writeFile(path, sealed);
    const withKey = (k: string | undefined) =>
      new TokenCacheStore({ stateDir: dir, key: k, log: captureLogger().logger }).load();
    await expect(withKey(KEY_HEX)).rejects.toThrow(CacheKeyError);
    await expect(withKey(undefined)).rejects.toThrow(/is encrypted; set the key it was written with/);
    expect(await readFile(path, "utf8")).toBe(sealed);

    const parsed = JSON.parse(sealed) as Record<string, string>;
    await writeFile(path, JSON.stringify({ ...parsed, tag: Buffer.alloc(16).toString("base64") }));
    await withKey(KEY_B64);
    expect((await readdir(dir)).filter((f) => f.includes(".corrupt-"))).toHaveLength(1);
  });
});

describe("StateDirLock", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-lock-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("admits one holder, and the next once it let go", async () => {
    const first = new StateDirLock(dir);
    first.acquire();
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), "utf8"))).toMatchObject({ pid: process.pid });
    expect(() => new StateDirLock(dir).acquire()).toThrow(StateDirLockedError);
    first.release();
    expect(await readdir(dir)).toStrictEqual([]);
    const second = new StateDirLock(dir);
    second.acquire();
    second.release();
  });

  it("takes over a lock left by a dead process or by an earlier run with this pid", async () => {
    for (const stale of ["999999\n", `${process.pid}\n`, "garbage"]) {
      await writeFile(join(dir, LOCK_FILE), stale);
      const lock = new StateDirLock(dir);
      lock.acquire();
      expect(JSON.parse(await readFile(join(dir, LOCK_FILE), "utf8"))).toMatchObject({ pid: process.pid });
      lock.release();
    }
  });

  it("refuses a lock held by another live process", async () => {
    // pid 1 (init) is alive on every Linux system; kill(1, 0) answers EPERM for a normal user, also "alive".
    await writeFile(join(dir, LOCK_FILE), "1\n");
    expect(() => new StateDirLock(dir).acquire()).toThrow(/another edge-signin agent \(pid 1\)/);
    // The same process named as the lock names it now: its pid, this boot, its start time.
    const init = { pid: 1, boot: bootId(), start: processStartTime(1), nonce: "0" };
    await writeFile(join(dir, LOCK_FILE), JSON.stringify(init));
    expect(() => new StateDirLock(dir).acquire()).toThrow(/another edge-signin agent \(pid 1\)/);
  });

  it("takes over a lock whose pid is alive but names another process: started later, or in another boot", async () => {
    const init = { pid: 1, boot: bootId(), start: processStartTime(1), nonce: "0" };
    const stale = [
      // pid 1 now is not the process that took the lock (a container restarted, `init: true`).
      { ...init, start: String(Number(init.start) + 1) },
      // Taken before a power cut.
      { ...init, boot: "00000000-0000-0000-0000-000000000000" },
    ];
    for (const owner of stale) {
      await writeFile(join(dir, LOCK_FILE), JSON.stringify(owner));
      const lock = new StateDirLock(dir);
      lock.acquire();
      lock.release();
    }
    // An older version's bare pid, of a process that started after the lock was written.
    await writeFile(join(dir, LOCK_FILE), `${process.ppid}\n`);
    const longAgo = new Date(Date.now() - 365 * 86_400_000);
    await utimes(join(dir, LOCK_FILE), longAgo, longAgo);
    const lock = new StateDirLock(dir);
    lock.acquire();
    lock.release();
    expect(await readdir(dir)).toStrictEqual([]);
  });
});
