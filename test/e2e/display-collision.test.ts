/**
 * A display whose broker user is used elsewhere, on a broker that makes the user name the client id (as the
 * shipped Mosquitto does): every login with that user takes the display's session. Run as the shipped bundle.
 */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";

describe("a web display whose broker user someone else logs in with", () => {
  let broker: TestBroker;
  const clis: RunningCli[] = [];
  beforeAll(async () => {
    broker = await startTestBroker({ extraConfig: ["use_username_as_clientid true"] });
  });
  afterAll(async () => {
    for (const cli of clis) cli.child.kill("SIGKILL");
    await broker?.close();
  });

  it("says once that another client uses its user, keeps trying, and is back once it is alone", async () => {
    const deviceId = `tv-collide-${process.pid}`;
    const user = `edge-signin/${deviceId}`;
    const cli = startCli(["display", "--web", "--device", deviceId], {
      EDGE_SIGNIN_MQTT_URL: broker.url,
      EDGE_SIGNIN_MQTT_USERNAME: user,
      EDGE_SIGNIN_DISPLAY_PORT: "0",
    });
    clis.push(cli);
    const output = () => `stdout:\n${cli.stdout().slice(-4000)}\nstderr:\n${cli.stderr().slice(-2000)}`;
    const url = await eventually(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(cli.stdout())?.[1], output);
    const connected = async () =>
      (
        (await (await fetch(`${url}/healthz`)).json()) as {
          devices: Record<string, { brokerConnected: boolean }>;
        }
      ).devices[deviceId]?.brokerConnected;
    await eventually(connected, output);
    // Someone with the display's user (its password is on every display box), again and again; each login
    // takes the display's session (the broker makes the user name the client id).
    // Mosquitto closes the older connection without a word (no DISCONNECT 0x8E): the display counts short lives.
    for (let i = 0; i < 16; i++) {
      const intruder = await mqtt.connectAsync(broker.url, {
        username: user,
        clientId: `x-${i}`,
        reconnectPeriod: 0,
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await intruder.endAsync();
    }
    await eventually(
      () => cli.stdout().includes("another client uses the MQTT client id"),
      output,
      30_000,
      250,
    );
    // Alone again: the display comes back by itself, within its backoff, and shows what the device publishes.
    await eventually(connected, output, 60_000, 250);
    const publisher = await mqtt.connectAsync(broker.url, { username: "agent", reconnectPeriod: 0 });
    await publisher.publishAsync(deviceTopics("edge-signin", deviceId).availability, "online", {
      retain: true,
      qos: 1,
    });
    await eventually(
      async () => {
        const res = await fetch(`${url}/devices/${deviceId}/events`);
        const reader = res.body?.getReader();
        const chunk = await reader?.read();
        await reader?.cancel();
        return new TextDecoder()
          .decode(chunk?.value as Uint8Array | undefined)
          .includes('"availability":"online"');
      },
      output,
      30_000,
      250,
    );
    await publisher.endAsync();
    const conflicts = cli
      .stdout()
      .split("\n")
      .filter((line) => line.includes("another client uses the MQTT client id"));
    expect(conflicts, output()).toHaveLength(1);
    expect(conflicts[0]).toContain("Give each its own broker user");
    expect(cli.child.exitCode).toBeNull();
  }, 120_000);
});
