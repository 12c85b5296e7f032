import { describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config/index.js";
import { DeviceView } from "../../src/display/device-view.js";
import { DeviceWatcher } from "../../src/mqtt/device-watcher.js";
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

  /** The slow clock's prompt, retained with the code's MQTT 5 expiry, as the agent publishes it. */
  async function publishRetained(deviceId: string): Promise<void> {
    const topics = deviceTopics("edge-signin", deviceId);
    await probe.publish(topics.display, JSON.stringify(promptFromSlowClock(deviceId)), {
      retain: true,
      properties: { messageExpiryInterval: 600 },
    });
    used.afterThisTest(() => probe.publish(topics.display, "", { retain: true }));
  }

  /** The terminal's output once it shows a code. */
  function screenOf(cli: RunningCli): Promise<string> {
    return eventually(
      () => (cli.stdout().includes("Code expires in") ? cli.stdout() : undefined),
      "the code on the terminal",
    );
  }

  it("a late terminal display counts down from the retained message's MQTT 5 expiry", async () => {
    const deviceId = `tv-clock-late-${process.pid}`;
    await publishRetained(deviceId);
    const cli = display(deviceId);
    expect(await screenOf(cli)).toMatch(/Code expires in (?:9:[45]\d|10:00) \(/);
  });

  it("a display that is already watching counts down from expiresIn", async () => {
    const deviceId = `tv-clock-live-${process.pid}`;
    const topics = deviceTopics("edge-signin", deviceId);
    const cli = display(deviceId);
    await eventually(
      () => (cli.stdout().includes("connected to the broker") ? true : undefined),
      "the display to connect",
    );
    // MQTT 3.1.1-style: no expiry property; the payload's duration is all there is. "Connected" is said before
    // the subscription is granted, so a live (not retained) message is sent again every half second until shown.
    const prompt = JSON.stringify(promptFromSlowClock(deviceId));
    let lastSent = 0;
    const screen = await eventually(async () => {
      if (cli.stdout().includes("Code expires in")) return cli.stdout();
      if (Date.now() - lastSent >= 500) {
        lastSent = Date.now();
        await probe.publish(topics.display, prompt, { retain: false });
      }
      return undefined;
    }, "the code on the terminal");
    expect(screen).toMatch(/Code expires in (?:9:[45]\d|10:00) \(/);
  });

  it("the web display's view puts the expiry on its own clock from the retained message's MQTT 5 expiry", async () => {
    const deviceId = `tv-clock-view-${process.pid}`;
    const topics = deviceTopics("edge-signin", deviceId);
    await publishRetained(deviceId);
    const config = loadDisplayConfig({ EDGE_SIGNIN_MQTT_URL: bed.broker.url }, [deviceId]);
    const watcher = new DeviceWatcher(config.mqtt, topics);
    const view = new DeviceView(deviceId, watcher);
    view.start();
    used.afterThisTest(async () => {
      view.stop();
      await watcher.stop();
    });
    const before = Date.now();
    await watcher.start();
    const prompt = await eventually(() => view.snapshot().prompt ?? undefined, "the prompt in the view");
    const left = Date.parse(prompt.expiresAt) - before;
    // About ten minutes from now, whatever the device's clock said (its expiresAt was 2 h ago).
    expect(left).toBeGreaterThan(590_000);
    expect(left).toBeLessThan(610_000);
  });
});
