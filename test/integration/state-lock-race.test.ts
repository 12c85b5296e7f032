import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { LOCK_FILE } from "../../src/storage/state-lock.js";

const CONTENDER = fileURLToPath(new URL("../helpers/lock-contender.ts", import.meta.url));
const CONTENDERS = 6;

/** Runs one contender process; resolves with what it printed. */
function contend(dir: string, startAt: number): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", CONTENDER, dir, String(startAt)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(out.trim());
    }),
  );
}

describe("processes racing for a stale state directory lock", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("exactly one takes it over, every time", async () => {
    for (let trial = 1; trial <= 4; trial++) {
      const dir = await mkdtemp(join(tmpdir(), "edge-signin-lock-race-"));
      dirs.push(dir);
      // A stale lock: a pid no process has.
      await writeFile(join(dir, LOCK_FILE), "999999\n");
      // Far enough ahead for every contender to have loaded; then they all try within the same millisecond.
      const startAt = Date.now() + 6_000;
      const results = await Promise.all(Array.from({ length: CONTENDERS }, () => contend(dir, startAt)));
      expect(
        results.filter((r) => r === "held"),
        `trial ${trial}: ${results.join(", ")}`,
      ).toHaveLength(1);
      expect(results.filter((r) => r === "refused")).toHaveLength(CONTENDERS - 1);
    }
  }, 120_000);
});
