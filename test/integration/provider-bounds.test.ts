import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { DisplayPayload, EventPayload } from "../../src/mqtt/topics.js";
import { eventually, startAgentProcess } from "../helpers/agent-process.js";
import { startFaultyFront } from "../helpers/faulty-front.js";
import { useTestBed } from "../helpers/fixture.js";

const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

// What a provider (or something in front of it) sends is held to sane ranges: a value out of range is clamped or
// refused, and one warning says which and what to do.
describe("bounds on what the provider sends (shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  const startEdited = async (edit: (body: Record<string, unknown>) => void) => {
    const front = await startFaultyFront(bed.idp, bed.stateDir);
    used.afterThisTest(() => front.close());
    front.editDeviceAuthorization(edit);
    return startAgentProcess(
      used,
      bed.env({
        EDGE_SIGNIN_AUTHORITY: front.authority,
        EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
        EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "agent-")),
        EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "30",
        EDGE_SIGNIN_RETRY_MAX_SECONDS: "60",
      }),
    );
  };
  /** The agent's warnings naming `field`, once there is one (log lines may trail the event that caused them). */
  const warnings = async (agent: ReturnType<typeof startAgentProcess>, field: string) => {
    const read = () =>
      agent.logLines().filter((line) => line["level"] === 40 && String(line["msg"]).includes(field));
    await eventually(() => read().length > 0, `a warning naming ${field}`, 10_000);
    // Anything logged with it has been flushed with it.
    await sleep(200);
    return read();
  };

  it("an interval of 3,000,000 s polls every 60 s, with one warning", async () => {
    const agent = await startEdited((body) => (body["interval"] = 3_000_000));
    await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000);
    const polls = bed.idp.requestCount(DEVICE_CODE_GRANT);
    await sleep(2_000);
    expect(bed.idp.requestCount(DEVICE_CODE_GRANT) - polls).toBe(0);
    expect(await warnings(agent, "interval")).toHaveLength(1);
    expect((await warnings(agent, "interval"))[0]?.["msg"]).toMatch(/3000000 s .*polling every 60 s/);
  });

  it("an expires_in of 2^32 s shows the code for an hour, announced as usual, with one warning", async () => {
    const agent = await startEdited((body) => (body["expires_in"] = 2 ** 32));
    const issued = (await probe.next(agent.topics.event("code_issued"), undefined, 30_000)).json<
      EventPayload<"code_issued"> & { at: string }
    >();
    const display = (
      await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    expect(display.expiresIn).toBe(3600);
    expect(Date.parse(display.expiresAt) - Date.parse(display.issuedAt)).toBe(3600_000);
    expect(issued.expiresAt).toBe(display.expiresAt);
    expect(await warnings(agent, "expires_in")).toHaveLength(1);
  });

  it("a user_code too long to show is refused, naming it: reason server, no prompt", async () => {
    const agent = await startEdited((body) => (body["user_code"] = "W".repeat(1_000)));
    const failed = (await probe.next(agent.topics.event("sign_in_failed"), undefined, 30_000)).json<
      EventPayload<"sign_in_failed">
    >();
    expect(failed.reason).toBe("server");
    expect(failed.message).toMatch(/user_code has 1000 characters, over the 64/);
    expect(probe.all(agent.topics.display).filter((m) => m.payload.length > 0)).toStrictEqual([]);
    expect(await warnings(agent, "user_code")).toHaveLength(1);
  });

  it("a 4,000,000-character user_code is not read at all: over the size bound, one warning", async () => {
    const agent = await startEdited((body) => (body["user_code"] = "W".repeat(4_000_000)));
    const failed = (await probe.next(agent.topics.event("sign_in_failed"), undefined, 30_000)).json<
      EventPayload<"sign_in_failed">
    >();
    expect(failed.reason).toBe("server");
    expect(failed.message).toMatch(/larger than 64 KiB/);
    expect(probe.all(agent.topics.display).filter((m) => m.payload.length > 0)).toStrictEqual([]);
    expect(await warnings(agent, "larger than 64 KiB")).toHaveLength(1);
  });
});
