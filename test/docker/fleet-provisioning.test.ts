import { readFile } from "node:fs/promises";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { appendedUsers, startComposeBroker, type ComposeBroker } from "./compose-broker.js";

/**
 * A fleet of 1,000 devices provisioned in one run of docker/create-broker-users.sh, on compose.yaml's broker as
 * it ships: the ACL's patterns confine every device to its own topics, and the 1,001st device is two new
 * password-file entries and nothing else.
 */
const FLEET = 1_000;
const PREFIX = "kiosk-";
/** Devices to try, spread over the fleet (the first, the last, and every 83rd between). */
const SAMPLE = [1, ...Array.from({ length: 12 }, (_, i) => 2 + i * 83), FLEET];

describe("a fleet of 1,000 devices on the compose broker", () => {
  let broker: ComposeBroker;
  const clients: MqttClient[] = [];

  const connect = async (role: "agent" | "display", device: string) => {
    const client = await mqtt.connectAsync(broker.url, {
      ...(await broker.credentials(role, device)),
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    broker = await startComposeBroker();
    await broker.addDevices("--count", String(FLEET), "--prefix", PREFIX);
    // Hashing 2,000 passwords is CPU-bound: minutes on a busy two-core machine. A bound, not a measure.
  }, 600_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker?.close();
  });

  it("confines every sampled device's agent and display to its own topics", async () => {
    for (const n of SAMPLE) {
      const device = `${PREFIX}${n}`;
      const neighbour = `${PREFIX}${(n % FLEET) + 1}`;
      const own = deviceTopics("edge-signin", device);
      const next = deviceTopics("edge-signin", neighbour);
      const [agent, neighbourAgent, display] = await Promise.all([
        connect("agent", device),
        connect("agent", neighbour),
        connect("display", device),
      ]);
      const received: string[] = [];
      display.on("message", (topic) => received.push(topic));
      await display.subscribeAsync("edge-signin/#", { qos: 1 });

      // The agent publishes its own topics, and not its neighbour's (MQTT 5: reason code 135).
      await agent.publishAsync(own.display, "code", { qos: 1 });
      for (const topic of [next.display, next.state, next.event("authenticated")])
        await expect(
          agent.publishAsync(topic, "forged", { qos: 1 }),
          `${device} -> ${topic}`,
        ).rejects.toMatchObject({ code: 135 });
      // The display publishes nothing, and reads its own device's code but not the neighbour's.
      await expect(display.publishAsync(own.display, "forged", { qos: 1 })).rejects.toMatchObject({
        code: 135,
      });
      await neighbourAgent.publishAsync(next.display, "neighbour-code", { qos: 1 });
      await agent.publishAsync(own.state, "marker", { qos: 1 });
      await expect.poll(() => received, { timeout: 10_000 }).toContain(own.state);
      expect(received, device).toStrictEqual([own.display, own.state]);
      await Promise.all([agent, neighbourAgent, display].map((c) => c.endAsync()));
    }
  }, 120_000);

  it("adds the 1,001st device as two password-file entries: the ACL and every other entry unchanged", async () => {
    const passwd = join(broker.secrets, "mosquitto_passwd");
    const before = {
      acl: await readFile(broker.acl, "utf8"),
      passwd: await readFile(passwd, "utf8"),
      password: (await broker.credentials("agent", `${PREFIX}500`)).password,
    };
    expect(before.passwd.trim().split("\n")).toHaveLength(2 * FLEET + 2 + 3);

    await broker.addDevices(`${PREFIX}${FLEET + 1}`);

    expect(await readFile(broker.acl, "utf8")).toBe(before.acl);
    const after = await readFile(passwd, "utf8");
    expect(appendedUsers(before.passwd, after)).toStrictEqual([
      `${PREFIX}${FLEET + 1}`,
      `edge-signin/${PREFIX}${FLEET + 1}`,
    ]);
    expect((await broker.credentials("agent", `${PREFIX}500`)).password).toBe(before.password);
    // The new device is confined like the others.
    const agent = await connect("agent", `${PREFIX}${FLEET + 1}`);
    await agent.publishAsync(deviceTopics("edge-signin", `${PREFIX}${FLEET + 1}`).state, "ok", { qos: 1 });
    await expect(
      agent.publishAsync(deviceTopics("edge-signin", `${PREFIX}${FLEET}`).state, "forged", { qos: 1 }),
    ).rejects.toMatchObject({ code: 135 });
  }, 120_000);
});
