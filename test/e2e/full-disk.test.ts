import { execFileSync } from "node:child_process";
import { mkdtemp, open, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import type { StatePayload } from "../../src/mqtt/topics.js";
import { command, eventually, signIn, startAgentProcess } from "../helpers/agent-process.js";
import { runCli } from "../helpers/cli.js";
import { useTestBed, type UsedTestBed } from "../helpers/fixture.js";

/**
 * A 64 KiB STATE_DIR of its own: a real tmpfs (the machines that run these tests are root; `mount` failing is a
 * test failure, never a skip). Unmounted after the test.
 */
async function smallStateDir(used: UsedTestBed): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-64k-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir]);
  used.afterThisTest(async () => {
    execFileSync("umount", ["-l", dir]);
    await rmdir(dir);
  });
  return dir;
}

/** Writes zeros to `path` until the file system refuses: the disk is then full. */
async function fillDisk(path: string): Promise<void> {
  const file = await open(path, "w");
  try {
    const chunk = Buffer.alloc(4096);
    for (let i = 0; i < 1024; i++) await file.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    await file.close().catch(() => undefined);
  }
}

const sessions = async (dir: string) => {
  const cache = JSON.parse(await readFile(join(dir, CACHE_FILE), "utf8")) as { RefreshToken?: object };
  return Object.keys(cache.RefreshToken ?? {}).length;
};

describe("disk space is spent on what matters first (64 KiB STATE_DIR, shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  it("keeps the session through a restart: optional files yield, no temp file is left behind", async () => {
    const stateDir = await smallStateDir(used);
    const env = bed.env({ EDGE_SIGNIN_STATE_DIR: stateDir });
    const agent = startAgentProcess(used, env);
    await signIn(used, agent);
    // The code cache is written a second after the first code and after the sign-in: give it the chance.
    await sleep(2_500);
    expect(await sessions(stateDir)).toBe(1);
    expect((await readdir(stateDir)).filter((name) => name.endsWith(".tmp"))).toStrictEqual([]);
    expect(await agent.stop()).toBe(0);

    const again = startAgentProcess(used, env);
    const renewed = await probe.next(
      again.topics.event("authenticated"),
      (m) => m.json<{ method: string }>().method === "refresh",
      30_000,
    );
    expect(renewed.json<{ claims: { sub: string } }>().claims.sub).toBe("alice");
    await sleep(2_500);
    expect((await readdir(stateDir)).filter((name) => name.endsWith(".tmp"))).toStrictEqual([]);
  });

  it("a full disk is a clear state, a log line and a health warning, and clears when room returns", async () => {
    const stateDir = await smallStateDir(used);
    const env = bed.env({ EDGE_SIGNIN_STATE_DIR: stateDir, EDGE_SIGNIN_HEALTH_INTERVAL_SECONDS: "1" });
    const agent = startAgentProcess(used, env);
    await signIn(used, agent);
    await sleep(2_500);
    const filler = join(stateDir, "filler");
    await fillDisk(filler);

    // A refresh rewrites the token cache: there is no room for it.
    expect(await command(used, agent.topics, "refresh")).toMatchObject({ status: "ok" });
    const full = await probe.next(agent.topics.state, (m) => m.json<StatePayload>().storage === "full");
    expect(full.json<StatePayload>()).toMatchObject({ state: "signed_in", storage: "full" });
    const line = agent
      .logLines()
      .find((l) => String(l["msg"]).startsWith("disk full: could not write the token cache"));
    expect(line).toMatchObject({ level: 50, diskFull: true, path: join(stateDir, CACHE_FILE) });
    expect((await readdir(stateDir)).filter((name) => name.endsWith(".tmp"))).toStrictEqual([]);
    const health = await eventually(async () => {
      const result = await runCli(["health"], { EDGE_SIGNIN_STATE_DIR: stateDir });
      return result.stdout.includes("STATE_DIR is full") ? result : undefined;
    }, "health to report the full disk");
    expect(health.code).toBe(0);

    // Room again: the next write succeeds and the state says so.
    await rm(filler);
    expect(await command(used, agent.topics, "refresh")).toMatchObject({ status: "ok" });
    const cleared = await probe.next(
      agent.topics.state,
      (m) => m.json<StatePayload>().state === "signed_in" && m.json<StatePayload>().storage === undefined,
    );
    expect(cleared.json<StatePayload>().storage).toBeUndefined();
    expect(await sessions(stateDir)).toBe(1);
  });
});
