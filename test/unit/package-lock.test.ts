import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * package-lock.json's root entry repeats package.json's metadata; when the two disagree, a fresh `npm install`
 * rewrites the lock (a dirty work tree on a fresh clone) and `npm ci` may refuse it. The lock once kept the
 * bin as dist/src/main.js after package.json had moved it to the bundle.
 */
interface Manifest {
  name?: string;
  version?: string;
  license?: string;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
const read = <T>(name: string) =>
  JSON.parse(readFileSync(new URL(`../../${name}`, import.meta.url), "utf8")) as T;

// npm writes bin paths without a leading "./".
const normalised = (m: Manifest) => ({
  name: m.name,
  version: m.version,
  license: m.license,
  bin: Object.fromEntries(Object.entries(m.bin ?? {}).map(([k, v]) => [k, v.replace(/^\.\//, "")])),
  engines: m.engines ?? {},
  dependencies: m.dependencies ?? {},
  devDependencies: m.devDependencies ?? {},
  optionalDependencies: m.optionalDependencies ?? {},
  peerDependencies: m.peerDependencies ?? {},
});

describe("package-lock.json", () => {
  it("records what package.json says (name, version, bin, engines, every dependency range)", () => {
    const lock = read<{ name: string; version: string; packages: Record<string, Manifest> }>(
      "package-lock.json",
    );
    const pkg = read<Manifest>("package.json");
    expect(normalised(lock.packages[""] ?? {})).toStrictEqual(normalised(pkg));
    expect({ name: lock.name, version: lock.version }).toStrictEqual({
      name: pkg.name,
      version: pkg.version,
    });
  });
});
