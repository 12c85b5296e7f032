import { describe, expect, it } from "vitest";
import type { EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { runCli } from "../helpers/cli.js";
import { startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

describe("an honest state between codes (shipped bundle)", () => {
  // Codes that live 1 s: the next waits until 5 s after the last request (MIN_CODE_GAP_MS), about 4 s.
  const used = useTestBed({ idp: { deviceCodeTtlSeconds: 1 } });
  const { bed, probe } = used;

  it("says signed_out with nextCodeAt while no code is shown, and health calls it healthy and waiting", async () => {
    const env = bed.env();
    const agent = startAgentProcess(used, env);
    const expired = await probe.next(agent.topics.event("code_expired"), undefined, 30_000);
    const second = (
      await probe.next(
        agent.topics.event("code_expired"),
        (m) => m.json<{ id: string }>().id !== expired.json<{ id: string }>().id,
        30_000,
      )
    ).json<EventPayload<"code_expired">>();
    expect(Date.parse(second.nextCodeAt)).toBeGreaterThan(Date.parse(second.expiredAt));

    const between = (
      await probe.next(
        agent.topics.state,
        (m) => m.json<StatePayload>().nextCodeAt === second.nextCodeAt,
        10_000,
      )
    ).json<StatePayload>();
    expect(between).toMatchObject({ state: "signed_out", nextCodeAt: second.nextCodeAt });
    expect(between.expiresAt).toBeUndefined();
    // Nothing on the display meanwhile.
    expect(probe.all(agent.topics.display).at(-1)?.payload.length).toBe(0);

    const health = await runCli(["health"], { EDGE_SIGNIN_STATE_DIR: env["EDGE_SIGNIN_STATE_DIR"] ?? "" });
    expect(health.code).toBe(0);
    expect(health.stdout).toMatch(
      /^healthy: state signed_out since \S+, broker connected \(MQTT 5\), heartbeat \d+ s ago/,
    );
    expect(health.stdout).toContain(`; waiting, next code at ${second.nextCodeAt}`);
  });
});
