/**
 * Every field a display uses has a real limit, and a message over its size is dropped before it is parsed: run as
 * the shipped bundle (`edge-signin display`, terminal and web) on real Mosquitto, with payloads that follow the
 * topic contract's shape but not its limits.
 */
import { readFile } from "node:fs/promises";
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

  it("takes no payload nested deeper than a claim ever is, and stays up to show the next prompt", async () => {
    const deviceId = nextDevice();
    const topics = deviceTopics(PREFIX, deviceId);
    const term = display(deviceId, [], { EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: "true" });
    await publisher.publish(topics.display, JSON.stringify(prompt(deviceId)), { retain: true, qos: 1 });
    await waitFor(term, (out) => out.includes("GOOD-CODE") || undefined);
    // 100,000 levels in 200 KB: parsed without trouble, but printing it (the claims, with the username shown)
    // would overflow the stack.
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    await publisher.publish(
      topics.event("authenticated"),
      `{"id":"1","type":"authenticated","deviceId":"${deviceId}","at":"now","account":{"name":"Eve"},"claims":{"x":${deep}}}`,
      { qos: 1 },
    );
    await publisher.publish(topics.display, JSON.stringify(prompt(deviceId, { userCode: "NEXT-CODE" })), {
      retain: true,
      qos: 1,
    });
    const out = await waitFor(term, (text) => (text.includes("NEXT-CODE") ? text : undefined));
    expect(out).toContain("events/authenticated: nested deeper than 32 levels");
    expect(term.child.exitCode).toBeNull();
    await publisher.publish(topics.display, "", { retain: true, qos: 1 });
  });

  it.each([4, 5] as const)(
    "drops retained messages over the size limits with one warning each, never holding them (MQTT %s)",
    async (version) => {
      const deviceId = nextDevice();
      const topics = deviceTopics(PREFIX, deviceId);
      // The shape is right, only the size is not: 100 KB on the state topic (over its 64 KiB), 32 MB on an event
      // topic (over what any message may be), both retained, so every start meets them again.
      const state = (bytes: number) =>
        JSON.stringify({
          state: "awaiting_user",
          since: new Date().toISOString(),
          deviceId,
          padding: "p".repeat(bytes),
        });
      await publisher.publish(topics.state, state(100_000), { retain: true, qos: 1 });
      await publisher.publish(
        topics.event("code_expired"),
        JSON.stringify({
          id: "1",
          type: "code_expired",
          deviceId,
          at: "now",
          padding: "p".repeat(32_000_000),
        }),
        { retain: true, qos: 1 },
      );
      await publisher.publish(topics.display, JSON.stringify(prompt(deviceId)), { retain: true, qos: 1 });
      const term = display(deviceId, [], { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: String(version) });
      await waitFor(term, (text) => text.includes("GOOD-CODE") || undefined);
      // A live code after the retained messages: once it is shown, every retained message has been dealt with.
      await publisher.publish(topics.display, JSON.stringify(prompt(deviceId, { userCode: "LAST-CODE" })), {
        qos: 1,
      });
      const out = await waitFor(term, (text) => (text.includes("LAST-CODE") ? text : undefined));
      const warnings = (topic: string) =>
        out.split("\n").filter((l) => l.startsWith(`[display] ignored a malformed message on ${topic}:`));
      // MQTT 5: the display's Maximum Packet Size made the broker drop the event; 3.1.1: skipped as it arrived.
      expect(warnings(topics.state)).toStrictEqual([
        expect.stringMatching(/: \d+ bytes, more than the 65536 /),
      ]);
      expect(warnings(topics.event("code_expired"))).toStrictEqual(
        version === 5 ? [] : [expect.stringMatching(/: \d+ bytes, more than the 278528 /)],
      );
      // Never held whole: the process's peak memory stayed far below one copy of the event.
      const status = await readFile(`/proc/${term.child.pid}/status`, "utf8");
      const peakMiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
      console.info(
        `terminal display peak RSS ${peakMiB.toFixed(0)} MiB (MQTT ${version}) after a 32 MB message`,
      );
      expect(peakMiB).toBeLessThan(110);
      await publisher.publish(topics.state, "", { retain: true, qos: 1 });
      await publisher.publish(topics.event("code_expired"), "", { retain: true, qos: 1 });
    },
  );
});
