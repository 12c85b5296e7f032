/**
 * Proves the test harness itself: every other integration test trusts that the broker is real, private,
 * honours MQTT 5 message expiry, and can be taken down and brought back on the same URL.
 */
import { eventually } from "../helpers/eventually.js";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker } from "../helpers/broker.js";
import type { TestBroker } from "../helpers/broker.js";
import { connectProbe } from "../helpers/mqtt-probe.js";
import type { MqttProbe } from "../helpers/mqtt-probe.js";

describe("test broker harness", () => {
  let broker: TestBroker;
  const probes: MqttProbe[] = [];
  const clients: MqttClient[] = [];

  const probe = async (): Promise<MqttProbe> => {
    const p = await connectProbe(broker.url);
    probes.push(p);
    return p;
  };

  beforeAll(async () => {
    broker = await startTestBroker();
  });

  afterAll(async () => {
    await Promise.all(probes.map((p) => p.close()));
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker?.close();
  });

  it("is a private broker, not the system one on 1883", () => {
    const url = new URL(broker.url);
    expect(url.protocol).toBe("mqtt:");
    expect(["container", "local-binary", "external"]).toContain(broker.kind);
    // An external broker is whatever the developer pointed us at; only our own must avoid 1883.
    if (broker.kind !== "external") expect(Number(url.port)).not.toBe(1883);
  });

  it("drops a retained message once its MQTT 5 expiry has passed, keeps one that has not", async () => {
    const prefix = `harness/expiry/${Date.now()}`;
    const publisher = await probe();
    await publisher.publish(`${prefix}/short`, "short-lived", {
      retain: true,
      properties: { messageExpiryInterval: 1 },
    });
    await publisher.publish(`${prefix}/long`, "long-lived", {
      retain: true,
      properties: { messageExpiryInterval: 3600 },
    });

    // Without this, "the late subscriber got nothing" would also pass if retain were broken.
    const early = await probe();
    await early.subscribe(`${prefix}/short`);
    expect((await early.next(`${prefix}/short`, undefined, 5_000)).payload.toString()).toBe("short-lived");

    await sleep(2_000);

    const late = await probe();
    // Subscribing to short first: its retained message, if any, precedes the SUBACK of the second
    // subscription on the wire, so by the time "long" arrives "short" has had its chance.
    await late.subscribe(`${prefix}/short`);
    await late.subscribe(`${prefix}/long`);
    const kept = await late.next(`${prefix}/long`, undefined, 5_000);
    expect(kept.payload.toString()).toBe("long-lived");
    expect(kept.retain).toBe(true);
    // The broker forwards the remaining lifetime, not the original one.
    expect(kept.properties?.messageExpiryInterval).toBeGreaterThan(3500);
    expect(kept.properties?.messageExpiryInterval).toBeLessThanOrEqual(3600);
    expect(late.all(`${prefix}/short`)).toEqual([]);
  });

  it("comes back on the same URL after stop()/start(), and clients reconnect", async () => {
    if (broker.kind === "external") {
      // The harness contract for an external broker is an explicit refusal, not a silent no-op.
      await expect(broker.stop()).rejects.toThrow(/EDGE_SIGNIN_TEST_MQTT_URL/);
      await expect(broker.start()).rejects.toThrow(/EDGE_SIGNIN_TEST_MQTT_URL/);
      return;
    }
    const urlBefore = broker.url;
    const topic = `harness/outage/${Date.now()}`;
    const watcher = await probe();
    await watcher.subscribe(topic);

    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 200 });
    clients.push(client);
    let connects = 0;
    client.on("connect", () => connects++);
    const wentOffline = new Promise<void>((resolve) => client.once("offline", () => resolve()));

    await broker.stop();
    await wentOffline;
    // The outage must be real, or the reconnect below proves nothing.
    await expectRefused(broker.url);

    await broker.start();
    expect(broker.url).toBe(urlBefore);
    await waitFor(() => client.connected && connects >= 1, 10_000, "client to reconnect after start()");

    // The probe also reconnects and resubscribes, so outage tests can keep using it. Retained, so the
    // message reaches it whether its resubscription lands before or after this publish.
    await client.publishAsync(topic, "after-restart", { qos: 1, retain: true });
    expect((await watcher.next(topic, undefined, 10_000)).payload.toString()).toBe("after-restart");
  });

  it("frees its port on close()", async () => {
    const { port } = new URL(broker.url);
    await Promise.all(probes.splice(0).map((p) => p.close()));
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.close();
    if (broker.kind === "external") return;

    await expect(listenOnce(Number(port))).resolves.toBeUndefined();
    await expectRefused(broker.url);
    // close() is idempotent so an afterAll can always call it.
    await expect(broker.close()).resolves.toBeUndefined();
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await eventually(condition, what, timeoutMs);
}

async function expectRefused(url: string): Promise<void> {
  // allowRetries=false: otherwise connectAsync waits through reconnects instead of reporting the refusal.
  const attempt = mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 2_000 }, false);
  await expect(attempt).rejects.toThrow();
}

function listenOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}
