import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadWithCodeCache } from "../../src/code-cache.js";

describe("the code cache the launcher loads the agent with", () => {
  let dir: string;
  let bundle: string;
  let cache: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-code-cache-"));
    bundle = join(dir, "bundle.cjs");
    cache = join(dir, "state", "code-cache.bin");
    // A CommonJS module that uses what the agent's bundle uses: exports, require, __filename.
    await writeFile(
      bundle,
      'const { basename } = require("node:path");\n' +
        "function square(n) { return n * n; }\n" +
        "module.exports = { square, name: basename(__filename) };\n",
    );
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  type Bundle = { square(n: number): number; name: string };

  it("compiles from source the first time, then loads what it saved", () => {
    const first = loadWithCodeCache<Bundle>(bundle, cache);
    expect(first.codeCache.status).toBe("absent");
    expect(first.exports.square(7)).toBe(49);
    expect(first.exports.name).toBe("bundle.cjs");
    first.codeCache.save("first_code");

    const second = loadWithCodeCache<Bundle>(bundle, cache);
    expect(second.codeCache.status).toBe("used");
    expect(second.codeCache.milestone).toBe("first_code");
    expect(second.exports.square(8)).toBe(64);
  });

  it("ignores a damaged or truncated file, and a file that is not a cache at all", async () => {
    loadWithCodeCache<Bundle>(bundle, cache).codeCache.save("first_code");
    const bytes = await readFile(cache);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
    await writeFile(cache, bytes);
    const flipped = loadWithCodeCache<Bundle>(bundle, cache);
    expect(flipped.codeCache.status).toBe("damaged");
    expect(flipped.exports.square(3)).toBe(9);

    flipped.codeCache.save("first_code");
    await truncate(cache, 20);
    expect(loadWithCodeCache<Bundle>(bundle, cache).codeCache.status).toBe("damaged");

    await writeFile(cache, "{ not a code cache }");
    expect(loadWithCodeCache<Bundle>(bundle, cache).codeCache.status).toBe("damaged");
  });

  it("starts afresh when the bundle changed (an upgrade)", async () => {
    loadWithCodeCache<Bundle>(bundle, cache).codeCache.save("first_code");
    await writeFile(bundle, "module.exports = { square: (n) => n * n * 1, name: 'v2' };\n");
    const upgraded = loadWithCodeCache<Bundle>(bundle, cache);
    expect(upgraded.codeCache.status).toBe("absent");
    expect(upgraded.exports.name).toBe("v2");
  });

  it("reports a file it cannot write", () => {
    const loaded = loadWithCodeCache<Bundle>(bundle, join(bundle, "not-a-directory", "code-cache.bin"));
    expect(() => loaded.codeCache.save("first_code")).toThrow(/ENOTDIR|EEXIST/);
  });
});
