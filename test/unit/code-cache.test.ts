import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  codeCacheFileOf,
  loadForCodeCache,
  loadWithCodeCache,
  writeCodeCache,
} from "../../src/cli/code-cache.js";

describe("the code cache shipped beside the agent's bundle", () => {
  let dir: string;
  let bundle: string;

  // Two CommonJS modules of exactly the same length: V8 alone would take one's cache for the other.
  const honest =
    'const { basename } = require("node:path");\nmodule.exports = { who: "honest", name: basename(__filename) };\n';
  const impostor =
    'const { basename } = require("node:path");\nmodule.exports = { who: "IMPOST", name: basename(__filename) };\n';

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-code-cache-"));
    bundle = join(dir, "agent.cjs");
    await writeFile(bundle, honest);
  });
  afterEach(async () => {
    await chmod(codeCacheFileOf(bundle), 0o600).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  type Bundle = { who: string; name: string };

  it("compiles from source when none was shipped, and uses the one made for this bundle", () => {
    const none = loadWithCodeCache<Bundle>(bundle);
    expect({ status: none.codeCache.status, exports: none.exports }).toStrictEqual({
      status: "absent",
      exports: { who: "honest", name: "agent.cjs" },
    });
    writeCodeCache(bundle);
    const cached = loadWithCodeCache<Bundle>(bundle);
    expect({ status: cached.codeCache.status, exports: cached.exports }).toStrictEqual({
      status: "used",
      exports: { who: "honest", name: "agent.cjs" },
    });
  });

  it("never runs a cache made from another script of the same length", async () => {
    expect(impostor.length).toBe(honest.length);
    await writeFile(bundle, impostor);
    writeCodeCache(bundle);
    await writeFile(bundle, honest);
    const loaded = loadWithCodeCache<Bundle>(bundle);
    expect({ status: loaded.codeCache.status, who: loaded.exports.who }).toStrictEqual({
      status: "stale",
      who: "honest",
    });
  });

  it("ignores a damaged or truncated file, and a file that is not a cache at all", async () => {
    writeCodeCache(bundle);
    const file = codeCacheFileOf(bundle);
    await chmod(file, 0o600);
    const bytes = await readFile(file);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
    await writeFile(file, bytes);
    expect(loadWithCodeCache<Bundle>(bundle).codeCache.status).toBe("damaged");
    await writeFile(file, bytes.subarray(0, 20));
    expect(loadWithCodeCache<Bundle>(bundle).codeCache.status).toBe("damaged");
    await writeFile(file, "{ not a code cache }");
    const junk = loadWithCodeCache<Bundle>(bundle);
    expect({ status: junk.codeCache.status, who: junk.exports.who }).toStrictEqual({
      status: "damaged",
      who: "honest",
    });
  });

  it("is written read-only, beside the bundle", async () => {
    writeCodeCache(bundle);
    const { stat } = await import("node:fs/promises");
    expect(((await stat(`${bundle}.cache`)).mode & 0o777).toString(8)).toBe("444");
  });

  it("made after a training run, holds the functions that ran after the set-up too, and still loads", async () => {
    // A function the set-up does not run: V8 compiles it lazily, at its first call.
    const later = `module.exports = { later() { ${Array.from({ length: 200 }, (_, i) => `const v${i} = ${i} * 2;`).join(" ")} return "ran"; } };\n`;
    await writeFile(bundle, later);
    writeCodeCache(bundle);
    const file = codeCacheFileOf(bundle);
    const setUpOnly = (await readFile(file)).length;
    const trained = loadForCodeCache<{ later(): string }>(bundle);
    expect(trained.exports.later()).toBe("ran");
    // The training run is the agent, which sets umask 077: the cache must stay readable by the agent's own user.
    const umask = process.umask(0o077);
    try {
      trained.write();
    } finally {
      process.umask(umask);
    }
    expect((await readFile(file)).length).toBeGreaterThan(setUpOnly + 1000);
    const loaded = loadWithCodeCache<{ later(): string }>(bundle);
    expect({ status: loaded.codeCache.status, result: loaded.exports.later() }).toStrictEqual({
      status: "used",
      result: "ran",
    });
    const { stat } = await import("node:fs/promises");
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe("444");
  });
});
