import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { startAedes, type InteropBroker } from "../helpers/interop-brokers.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { agentEnv, startJourneyBed, waitForLog, type JourneyBed } from "./journey.js";

/** MQTT 3.1.1 has no message expiry: a retained prompt outlives its code unless someone removes it. */
const stalePrompt = (deviceId: string): DisplayPayload => ({
  deviceId,
  userCode: "STALE-CODE",
  verificationUri: "https://login.example.com/device",
  message: "Enter STALE-CODE",
  issuedAt: new Date(Date.now() - 16 * 60_000).toISOString(),
  expiresAt: new Date(Date.now() - 60_000).toISOString(),
});

describe("a retained prompt past its expiresAt on a 3.1.1 broker (aedes)", () => {
  let bed: JourneyBed;
  let broker: InteropBroker;
  let probe: MqttProbe;
  const running: RunningCli[] = [];
  beforeAll(async () => {
    [bed, broker] = await Promise.all([startJourneyBed(), startAedes()]);
    probe = await connectProbe(broker.url, { protocolVersion: 4 });
  });
  afterAll(async () => {
    for (const cli of running) cli.child.kill("SIGKILL");
    await probe.close();
    await Promise.all([bed.close(), broker.close()]);
  });

  it("is never shown by the terminal display", async () => {
    const deviceId = `stale-${process.pid}-terminal`;
    const topics = deviceTopics("edge-signin", deviceId);
    await probe.publish(topics.display, JSON.stringify(stalePrompt(deviceId)), { qos: 1, retain: true });
    const display = startCli(["display", "--device", deviceId], { EDGE_SIGNIN_MQTT_URL: broker.url });
    running.push(display);
    const deadline = Date.now() + 20_000;
    while (!display.stdout().includes("connected to the broker") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    // A fresh code after the retained one: once it is on screen, the retained prompt has been judged.
    const fresh = {
      ...stalePrompt(deviceId),
      userCode: "FRESH-CODE",
      issuedAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      expiresIn: 600,
    };
    await probe.publish(topics.display, JSON.stringify(fresh), { qos: 1 });
    while (!display.stdout().includes("FRESH-CODE") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(display.stdout()).toContain("FRESH-CODE");
    expect(display.stdout()).not.toContain("STALE-CODE");
    display.child.kill("SIGTERM");
    expect(await display.exited).toBe(0);
  });

  it("is removed by the agent when it starts, before its own code is retained", async () => {
    const env = await agentEnv(bed, broker.url);
    const deviceId = env["EDGE_SIGNIN_DEVICE_ID"] ?? "";
    const topics = deviceTopics("edge-signin", deviceId);
    await probe.publish(topics.display, JSON.stringify(stalePrompt(deviceId)), { qos: 1, retain: true });
    const agent = startCli(["agent"], env);
    running.push(agent);
    await waitForLog(agent, (l) => l["msg"] === "code issued");
    // A display that starts now is handed the agent's code, never the stale one.
    const late = await connectProbe(broker.url, { protocolVersion: 4 });
    try {
      await late.subscribe(topics.display);
      const shown = (await late.next(topics.display, () => true, 15_000)).json<DisplayPayload>();
      expect(shown.userCode).not.toBe("STALE-CODE");
      expect(Date.parse(shown.expiresAt)).toBeGreaterThan(Date.now());
    } finally {
      await late.close();
    }
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
  });
});
