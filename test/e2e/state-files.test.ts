import { execFileSync } from "node:child_process";
import { mkdir, open, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import { LOCK_FILE } from "../../src/storage/state-lock.js";
import { METADATA_FILE } from "../../src/auth/discovery.js";
import type { StatePayload } from "../../src/mqtt/topics.js";
import { startAgentProcess } from "../helpers/agent-process.js";
import { runCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";

const fifo = (path: string) => execFileSync("mkfifo", [path]);

/** What may sit where the agent keeps a file: each makes `path` into one obstacle. */
const OBSTACLES: Record<string, (path: string) => Promise<unknown>> = {
  "a FIFO": (path) => Promise.resolve(fifo(path)),
  "a directory": (path) => mkdir(path),
  // Sparse: 600 MiB that cost no disk, more than a string can hold.
  "a 600 MiB file": async (path) => {
    const file = await open(path, "w");
    await file.truncate(600 * 1024 * 1024);
    await file.close();
  },
};

describe("state files are untrusted input (shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  /** Starts an agent on `env` and expects a code on screen, then a clean exit on SIGTERM. */
  async function startsAndStops(env: Record<string, string>) {
    const agent = startAgentProcess(used, env);
    await probe.next(agent.topics.state, (m) => m.json<StatePayload>().state === "awaiting_user", 20_000);
    expect(await agent.stop()).toBe(0);
    return agent;
  }

  it.each(Object.keys(OBSTACLES))(
    "a token cache that is %s is moved aside with a warning; the agent starts signed out",
    async (kind) => {
      const env = bed.env();
      const stateDir = env["EDGE_SIGNIN_STATE_DIR"] ?? "";
      await mkdir(stateDir, { recursive: true });
      await OBSTACLES[kind]?.(join(stateDir, CACHE_FILE));
      const agent = await startsAndStops(env);
      const warning = agent
        .logLines()
        .find((line) => line["msg"] === "token cache unreadable; moved aside, starting signed out");
      expect(warning).toMatchObject({
        level: 40,
        path: join(stateDir, CACHE_FILE),
        problem: expect.any(String),
      });
      expect(
        (await readdir(stateDir)).filter((name) => name.startsWith(`${CACHE_FILE}.corrupt-`)),
      ).toHaveLength(1);
    },
  );

  it.each(["health.json", LOCK_FILE, METADATA_FILE, "outbox/0000000000000001.json"])(
    "a FIFO at %s neither hangs the start nor stops SIGTERM",
    async (name) => {
      const env = bed.env();
      const stateDir = env["EDGE_SIGNIN_STATE_DIR"] ?? "";
      await mkdir(join(stateDir, "outbox"), { recursive: true });
      fifo(join(stateDir, name));
      await startsAndStops(env);
    },
  );

  it("health answers at once, unhealthy, when health.json is a FIFO", async () => {
    const stateDir = bed.env()["EDGE_SIGNIN_STATE_DIR"] ?? "";
    await mkdir(stateDir, { recursive: true });
    fifo(join(stateDir, "health.json"));
    const result = await runCli(["health"], { EDGE_SIGNIN_STATE_DIR: stateDir }, 15_000);
    expect(result).toMatchObject({ code: 1 });
    expect(result.stdout).toBe(
      `unhealthy: cannot read the health file ${join(stateDir, "health.json")}: not a regular file (a FIFO, socket or device)\n`,
    );
  });

  it("health is unhealthy when the pid in a fresh-looking health file is a live process that is not the agent", async () => {
    const stateDir = bed.env()["EDGE_SIGNIN_STATE_DIR"] ?? "";
    await mkdir(stateDir, { recursive: true });
    const now = new Date().toISOString();
    // This test's own process: alive, but not the edge-signin agent that wrote the file (a pid reused).
    await writeFile(
      join(stateDir, "health.json"),
      JSON.stringify({
        pid: process.pid,
        state: "signed_in",
        since: now,
        broker: "connected",
        brokerSince: now,
        heartbeatAt: now,
        heartbeatSeconds: 30,
      }),
    );
    const result = await runCli(["health"], { EDGE_SIGNIN_STATE_DIR: stateDir }, 15_000);
    expect(result).toStrictEqual({
      code: 1,
      stdout: `unhealthy: pid ${process.pid} is not the edge-signin agent that wrote ${join(stateDir, "health.json")} (it died; another process has its pid)\n`,
      stderr: "",
    });
  });
});
