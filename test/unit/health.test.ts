import { describe, expect, it } from "vitest";
import { judgeHealth } from "../../src/cli/health.js";
import type { HealthFile } from "../../src/reporters/health-reporter.js";

const NOW = Date.parse("2026-11-25T12:00:00.000Z");
const PATH = "/var/lib/edge-signin/health.json";
const alive = () => "agent" as const;

function file(overrides: Partial<HealthFile> = {}): string {
  const health: HealthFile = {
    pid: 4242,
    state: "awaiting_user",
    since: "2026-11-25T11:59:00.000Z",
    broker: "connected",
    brokerSince: "2026-11-25T11:58:00.000Z",
    heartbeatAt: "2026-11-25T11:59:55.000Z",
    heartbeatSeconds: 10,
    ...overrides,
  };
  return JSON.stringify(health);
}

describe("judgeHealth", () => {
  it("is healthy with a live process, a fresh heartbeat and a connected broker", () => {
    expect(judgeHealth(file(), PATH, NOW, alive)).toStrictEqual({
      healthy: true,
      reason:
        "healthy: state awaiting_user since 2026-11-25T11:59:00.000Z, broker connected, heartbeat 5 s ago",
    });
  });

  it("is unhealthy without a health file", () => {
    expect(judgeHealth(undefined, PATH, NOW, alive)).toStrictEqual({
      healthy: false,
      reason: `unhealthy: no health file at ${PATH}: the agent is not running (or uses another STATE_DIR)`,
    });
  });

  it("is unhealthy with a file the agent did not write", () => {
    for (const contents of ["", "{", '{"pid":1}', file({ heartbeatAt: "yesterday" })]) {
      expect(judgeHealth(contents, PATH, NOW, alive)).toStrictEqual({
        healthy: false,
        reason: `unhealthy: health file ${PATH} is not one the agent wrote`,
      });
    }
  });

  it("shows, never obeys, control characters from the file and its path", () => {
    // A window title (OSC ended by BEL), an 8-bit CSI that clears the screen, a bidi override, a bare CR.
    const hostile = "broker \u001b]0;owned\u0007down\u009b2J\u202eevil\rfake: healthy";
    const path = "/tmp/\u001b[31mred/health.json";
    const verdicts = [
      judgeHealth(file({ problem: hostile }), path, NOW, alive),
      judgeHealth(file({ problem: hostile }), path, NOW, () => "other"),
      judgeHealth("{", path, NOW, alive),
    ];
    for (const { reason } of verdicts) expect(reason).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    expect(verdicts[0]?.reason).toBe(
      "unhealthy: broker \\x1b]0;owned\\x07down\\x9b2J\\u202eevil\\x0dfake: healthy",
    );
    expect(verdicts[1]?.reason).toContain("/tmp/\\x1b[31mred/health.json");
  });

  it("is unhealthy when the process that wrote the file is gone", () => {
    expect(judgeHealth(file(), PATH, NOW, (pid) => (pid !== 4242 ? "agent" : "gone"))).toStrictEqual({
      healthy: false,
      reason: "unhealthy: the agent (pid 4242) is gone; last heartbeat 5 s ago",
    });
  });

  it("allows two missed heartbeats and fails on the third", () => {
    expect(judgeHealth(file({ heartbeatAt: "2026-11-25T11:59:30.000Z" }), PATH, NOW, alive).healthy).toBe(
      true,
    );
    expect(judgeHealth(file({ heartbeatAt: "2026-11-25T11:59:29.000Z" }), PATH, NOW, alive)).toStrictEqual({
      healthy: false,
      reason: "unhealthy: last heartbeat 31 s ago (expected every 10 s): the agent is stuck",
    });
  });

  it("tolerates a broker outage of up to three heartbeats (the agent reconnects by itself)", () => {
    const down = (since: string) => file({ broker: "disconnected", brokerSince: since });
    expect(judgeHealth(down("2026-11-25T11:59:40.000Z"), PATH, NOW, alive)).toStrictEqual({
      healthy: true,
      reason:
        "healthy: state awaiting_user since 2026-11-25T11:59:00.000Z, broker disconnected, heartbeat 5 s ago",
    });
    expect(judgeHealth(down("2026-11-25T11:59:00.000Z"), PATH, NOW, alive)).toStrictEqual({
      healthy: false,
      reason: "unhealthy: the broker has been unreachable for 60 s",
    });
  });
});
