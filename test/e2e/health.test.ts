import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { runCli, startCli, type RunningCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";

/** Heartbeat of the agents under test: stale after 3 of them, 1.5 s. */
const HEARTBEAT_SECONDS = 0.5;

/** `edge-signin health`, as the container's HEALTHCHECK runs it: same environment as the agent. */
async function health(env: Record<string, string>): Promise<{ code: number | string; line: string }> {
  const result = await runCli(["health"], env);
  expect(result.stderr).toBe("");
  return { code: result.code, line: result.stdout.trim() };
}

/** Polls until `health` gives the expected exit code: heartbeats and reconnects take their own time. */
async function healthBecomes(env: Record<string, string>, code: number, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = await health(env);
  while (last.code !== code && Date.now() < deadline) {
    await sleep(250);
    last = await health(env);
  }
  expect(last.code, last.line).toBe(code);
  return last.line;
}

describe("edge-signin health", () => {
  const { bed, probe } = useTestBed();

  async function startAgent(): Promise<{ cli: RunningCli; env: Record<string, string> }> {
    const env = bed.env({ EDGE_SIGNIN_HEALTH_INTERVAL_SECONDS: String(HEARTBEAT_SECONDS) });
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const cli = startCli(["agent"], env);
    await probe.next(topics.display, (m) => m.payload.length > 0);
    return { cli, env };
  }

  it("is healthy while the agent runs, and unhealthy once it has stopped", async () => {
    const { cli, env } = await startAgent();
    try {
      const line = await healthBecomes(env, 0);
      expect(line).toMatch(
        /^healthy: state awaiting_user since \S+, broker connected \(MQTT 5\), heartbeat \d+ s ago$/,
      );
      const written = JSON.parse(
        await readFile(join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", "health.json"), "utf8"),
      ) as Record<string, unknown>;
      expect(written).toMatchObject({
        pid: cli.child.pid,
        state: "awaiting_user",
        broker: "connected",
        heartbeatSeconds: HEARTBEAT_SECONDS,
      });

      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
      expect(await health(env)).toStrictEqual({
        code: 1,
        line: `unhealthy: no health file at ${join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", "health.json")}: the agent is not running (or uses another STATE_DIR)`,
      });
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("is unhealthy while the agent is frozen (SIGSTOP) and healthy again once it runs (SIGCONT)", async () => {
    const { cli, env } = await startAgent();
    try {
      await healthBecomes(env, 0);
      cli.child.kill("SIGSTOP");
      const line = await healthBecomes(env, 1);
      expect(line).toMatch(
        /^unhealthy: last heartbeat \d+ s ago \(expected every 0.5 s\): the agent is stuck$/,
      );
      cli.child.kill("SIGCONT");
      await healthBecomes(env, 0);
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("is unhealthy after a crash that left the health file behind", async () => {
    const { cli, env } = await startAgent();
    await healthBecomes(env, 0);
    cli.child.kill("SIGKILL");
    await cli.exited;
    const line = await healthBecomes(env, 1);
    expect(line).toMatch(/^unhealthy: the agent \(pid \d+\) is gone; last heartbeat \d+ s ago$/);
  });

  it("is unhealthy while the broker stays unreachable, and healthy once the agent has reconnected", async () => {
    const { cli, env } = await startAgent();
    try {
      await healthBecomes(env, 0);
      await bed.broker.stop();
      try {
        expect(await healthBecomes(env, 1)).toMatch(/^unhealthy: the broker has been unreachable for \d+ s$/);
      } finally {
        await bed.broker.start();
      }
      expect(await healthBecomes(env, 0)).toMatch(/broker connected/);
    } finally {
      cli.child.kill("SIGKILL");
    }
  });
});
