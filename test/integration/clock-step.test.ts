import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DisplayPayload, EventPayload } from "../../src/mqtt/topics.js";
import { eventually, startAgentProcess, type AgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

const PRELOAD = fileURLToPath(new URL("../helpers/stepped-clock.mjs", import.meta.url));
const HOUR_MS = 3600_000;
const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

/** Steps the agent's wall clock by its next configured step; resolves once the process says it did. */
async function stepClock(agent: AgentProcess, steps: number): Promise<void> {
  agent.cli.child.kill("SIGUSR2");
  await eventually(
    () => agent.cli.stderr().split("clock stepped").length - 1 >= steps,
    `clock step ${steps} applied`,
    5_000,
  );
}

// A device without a battery-backed clock boots, shows a code, and NTP steps its clock by hours. The code's
// lifetime is the provider's, counted from when it arrived: no wall clock may end it early or keep it late.
describe("a wall clock stepped while a code is on screen (shipped bundle, Date stepped in the process)", () => {
  const used = useTestBed({ idp: { deviceCodeTtlSeconds: 30 } });
  const { bed, probe } = used;

  const start = (steps: readonly number[]) =>
    startAgentProcess(
      used,
      bed.env({
        NODE_OPTIONS: `--import=${PRELOAD}`,
        EDGE_SIGNIN_TEST_CLOCK_STEPS_MS: steps.join(","),
      }),
    );

  it("stepped 3 h forward, then to 10 min behind: the same code stays and the person's sign-in completes", async () => {
    const agent = start([3 * HOUR_MS, -(3 * HOUR_MS + 10 * 60_000)]);
    const display = (
      await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    await stepClock(agent, 1);
    // A few polls on the stepped clock (the provider's interval is 1 s here).
    const pollsAfter = bed.idp.requestCount(DEVICE_CODE_GRANT) + 3;
    await eventually(
      () => bed.idp.requestCount(DEVICE_CODE_GRANT) >= pollsAfter,
      "three polls on the stepped clock",
      10_000,
    );
    await stepClock(agent, 2);
    const event = probe.next(agent.topics.event("authenticated"), undefined, 30_000);
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });
    const authenticated = (await event).json<EventPayload<"authenticated">>();
    expect(authenticated).toMatchObject({ method: "device_code", verified: true, claims: { sub: "alice" } });
    // The agent's own clock really was stepped: it stamps its events 10 min behind.
    expect(Date.now() - Date.parse(authenticated.at)).toBeGreaterThan(9 * 60_000);
    expect(probe.all(agent.topics.event("code_expired"))).toStrictEqual([]);
    const shown = probe.all(agent.topics.display).filter((m) => m.payload.length > 0);
    expect(shown.map((m) => m.json<DisplayPayload>().userCode)).toStrictEqual([display.userCode]);
  });

  it("stepped 10 min back: the code still ends when the provider's lifetime is over, and a new one follows", async () => {
    const agent = start([-10 * 60_000]);
    const display = (
      await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    await stepClock(agent, 1);
    const expired = (await probe.next(agent.topics.event("code_expired"), undefined, 50_000)).json<
      EventPayload<"code_expired">
    >();
    expect(expired.userCode).toBe(display.userCode);
    const next = (
      await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    expect(next.userCode).not.toBe(display.userCode);
  });
});
