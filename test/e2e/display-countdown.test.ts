import { describe, expect, it } from "vitest";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { eventually } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

describe("displays count down from what they received, not from the device's clock (shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  function display(deviceId: string): RunningCli {
    const cli = startCli(["display", "--device", deviceId], { EDGE_SIGNIN_MQTT_URL: bed.broker.url });
    used.afterThisTest(() => cli.child.kill("SIGKILL"));
    return cli;
  }

  /** What a device whose clock is 2 h behind publishes for a fresh 10-minute code. */
  function promptFromSlowClock(deviceId: string): DisplayPayload {
    const deviceNow = Date.now() - 2 * 3600_000;
    return {
      deviceId,
      userCode: "WDJB-MJHT",
      verificationUri: "https://login.example.com/device",
      message: "To sign in, open https://login.example.com/device and enter WDJB-MJHT.",
      issuedAt: new Date(deviceNow).toISOString(),
      expiresAt: new Date(deviceNow + 600_000).toISOString(),
      expiresIn: 600,
    };
  }

  it("a late terminal display counts down from the retained message's MQTT 5 expiry", async () => {
    const deviceId = `tv-clock-late-${process.pid}`;
    const topics = deviceTopics("edge-signin", deviceId);
    await probe.publish(topics.display, JSON.stringify(promptFromSlowClock(deviceId)), {
      retain: true,
      properties: { messageExpiryInterval: 600 },
    });
    used.afterThisTest(() => probe.publish(topics.display, "", { retain: true }));
    const cli = display(deviceId);
    const screen = await eventually(
      () => (cli.stdout().includes("The code expires in") ? cli.stdout() : undefined),
      "the code on the terminal",
    );
    expect(screen).toMatch(/The code expires in about 10 min \(/);
  });

  it("a display that is already watching counts down from expiresIn", async () => {
    const deviceId = `tv-clock-live-${process.pid}`;
    const topics = deviceTopics("edge-signin", deviceId);
    const cli = display(deviceId);
    await eventually(
      () => (cli.stdout().includes("connected to the broker") ? true : undefined),
      "the display to connect",
    );
    // MQTT 3.1.1-style: no expiry property; the payload's duration is all there is.
    await probe.publish(topics.display, JSON.stringify(promptFromSlowClock(deviceId)), { retain: false });
    const screen = await eventually(
      () => (cli.stdout().includes("The code expires in") ? cli.stdout() : undefined),
      "the code on the terminal",
    );
    expect(screen).toMatch(/The code expires in about 10 min \(/);
  });
});
