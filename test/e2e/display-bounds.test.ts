/**
 * Every field a display uses has a real limit, and a message over its size is dropped before it is parsed: run as
 * the shipped bundle (`edge-signin display`, terminal and web) on real Mosquitto, with payloads that follow the
 * topic contract's shape but not its limits.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

const PREFIX = "edge-signin";

function prompt(deviceId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    deviceId,
    userCode: "GOOD-CODE",
    verificationUri: "https://login.example.com/device",
    message: "To sign in, open https://login.example.com/device and enter GOOD-CODE.",
    issuedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
    ...overrides,
  } satisfies DisplayPayload & Record<string, unknown>;
}

describe("displays bound what they take (shipped bundle)", () => {
  const { bed } = useTestBed({ probe: false });
  let publisher: MqttProbe;
  const clis: RunningCli[] = [];
  let n = 0;
  const nextDevice = () => `tv-bounds-${process.pid}-${++n}`;

  beforeAll(async () => {
    publisher = await connectProbe(bed.broker.url);
  });
  afterEach(() => {
    for (const cli of clis.splice(0)) cli.child.kill("SIGKILL");
  });
  afterAll(async () => {
    await publisher?.close();
  });

  function display(deviceId: string, args: string[] = [], env: Record<string, string> = {}): RunningCli {
    const cli = startCli(["display", "--device", deviceId, ...args], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      EDGE_SIGNIN_DISPLAY_PORT: "0",
      ...env,
    });
    clis.push(cli);
    return cli;
  }

  const waitFor = <T>(cli: RunningCli, test: (out: string) => T | undefined) =>
    eventually(
      () => test(cli.stdout()),
      () => `stdout:\n${cli.stdout().slice(-3000)}\nstderr:\n${cli.stderr().slice(-2000)}`,
      30_000,
      100,
    );

  it("keeps running on fields of the right type but out of range, and shows the next good prompt", async () => {
    const deviceId = nextDevice();
    const topics = deviceTopics(PREFIX, deviceId);
    // Strings whose conversion throws (no callable toString), a lifetime far past any Date, times that are
    // no dates: each one followed the schema's shape (or no schema) before.
    const unprintable = { toString: "x", valueOf: 0 };
    await publisher.publish(
      topics.state,
      JSON.stringify({ state: "error", since: new Date().toISOString(), deviceId, message: unprintable }),
      { retain: true, qos: 1 },
    );
    const term = display(deviceId);
    const web = display(deviceId, ["--web"]);
    const url = await waitFor(web, (out) => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1]);
    // The retained state's warning says the display has subscribed: live messages from now on reach it.
    await waitFor(term, (out) => out.includes("/state: message") || undefined);
    await publisher.publish(topics.display, JSON.stringify(prompt(deviceId, { expiresIn: 1e300 })), {
      qos: 1,
    });
    await publisher.publish(topics.display, JSON.stringify(prompt(deviceId, { expiresIn: 2 ** 40 })), {
      qos: 1,
    });
    await publisher.publish(
      topics.display,
      JSON.stringify(prompt(deviceId, { issuedAt: "+275760-09-13T00:00:00.001Z" })),
      { qos: 1 },
    );
    await publisher.publish(
      topics.event("sign_in_failed"),
      JSON.stringify({
        id: "1",
        type: "sign_in_failed",
        deviceId,
        at: new Date().toISOString(),
        reason: unprintable,
        retryAt: { toString: 1 },
      }),
      { qos: 1 },
    );
    await publisher.publish(topics.display, JSON.stringify(prompt(deviceId, { userCode: "NEXT-CODE" })), {
      qos: 1,
    });
    const screen = await waitFor(term, (out) => (out.includes("NEXT-CODE") ? out : undefined));
    expect(screen).not.toContain("GOOD-CODE");
    expect(screen.match(/ignored a malformed message/g)).toHaveLength(5);
    const events = await fetch(`${url}/devices/${deviceId}/events`);
    const reader = (events.body as ReadableStream<Uint8Array> | null)?.getReader();
    let text = "";
    for (let i = 0; i < 20 && !text.includes("NEXT-CODE"); i++) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    await reader?.cancel();
    expect(text).toContain("NEXT-CODE");
    expect(term.child.exitCode).toBeNull();
    expect(web.child.exitCode).toBeNull();
  });

  it.each([4, 5] as const)(
    "drops a retained message over the size limit with one warning, never holding it (MQTT %s)",
    async (version) => {
      const deviceId = nextDevice();
      const topics = deviceTopics(PREFIX, deviceId);
      // 3 MB on the state topic: the shape is right, only the size is not.
      const huge = JSON.stringify({
        state: "awaiting_user",
        since: new Date().toISOString(),
        deviceId,
        padding: "p".repeat(3_000_000),
      });
      await publisher.publish(topics.state, huge, { retain: true, qos: 1 });
      await publisher.publish(topics.display, JSON.stringify(prompt(deviceId)), { retain: true, qos: 1 });
      const term = display(deviceId, [], { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: String(version) });
      const out = await waitFor(term, (text) => (text.includes("GOOD-CODE") ? text : undefined));
      // MQTT 5: the display's Maximum Packet Size made the broker drop it; 3.1.1: dropped unparsed, said once.
      const warnings = out.match(/ignored a malformed message on [^\n]*state[^\n]*/g) ?? [];
      if (version === 5) expect(warnings).toStrictEqual([]);
      else expect(warnings).toStrictEqual([expect.stringMatching(/: \d+ bytes, more than the 65536 /)]);
      expect(out).not.toContain("state: waiting for someone");
      await publisher.publish(topics.state, "", { retain: true, qos: 1 });
    },
  );
});
