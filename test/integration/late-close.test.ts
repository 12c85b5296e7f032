import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Aedes } from "aedes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MqttConfig } from "../../src/config/index.js";
import { MqttGateway } from "../../src/mqtt/gateway.js";
import { Outbox } from "../../src/storage/outbox.js";
import { OutboxSender } from "../../src/mqtt/outbox-sender.js";
import { deviceTopics, isEventTopic } from "../../src/mqtt/topics.js";
import { captureLogger } from "../helpers/fixture.js";
import { startAedes, type InteropBroker } from "../helpers/interop-brokers.js";
import { connectProbe } from "../helpers/mqtt-probe.js";

/**
 * A broker that closes the connection seconds after an event arrived, without acknowledging it, is not one that
 * refuses the event: NATS in a cluster does this while it elects a new leader for its message stream (its store
 * times out after 4 s). The event must arrive once the broker takes it, not be given up as "too large".
 */
describe("an event in flight when the broker closes the connection later, for reasons of its own", () => {
  let broker: InteropBroker & { readonly aedes: Aedes };
  let dir: string;
  let closesLeft = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-late-close-"));
    broker = await startAedes();
    broker.aedes.authorizePublish = (client, packet, callback) => {
      if (client && packet.topic.includes("/events/") && closesLeft > 0) {
        closesLeft -= 1;
        // Neither acknowledged nor refused: the connection ends 3 s later, as NATS's store timeout does.
        setTimeout(() => client.close(), 3_000);
        return;
      }
      callback(null);
    };
  });
  afterAll(async () => {
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("resends it after each reconnect and delivers it, however often that happens", async () => {
    const topics = deviceTopics("edge-signin", `late-close-${process.pid}`);
    const config: MqttConfig = {
      urls: [broker.url],
      clientId: `edge-signin-late-close-${process.pid}`,
      protocolVersion: 4,
      username: undefined,
      password: undefined,
      ca: undefined,
      cert: undefined,
      key: undefined,
      connectTimeoutMs: 10_000,
    };
    const log = captureLogger();
    const gateway = new MqttGateway(config, topics, log.logger);
    const outbox = new Outbox(
      join(dir, "outbox"),
      { maxEvents: 100, accepts: (topic) => isEventTopic(topics, topic) },
      log.logger,
    );
    outbox.open();
    const sender = new OutboxSender(outbox, gateway, log.logger);
    gateway.on("connect", () => sender.kick());
    const watcher = await connectProbe(broker.url, { protocolVersion: 4 });
    try {
      await watcher.subscribe(topics.event("code_expired"));
      await gateway.start();
      closesLeft = 3;
      outbox.append(topics.event("code_expired"), { id: "in-flight" });
      sender.kick();
      const received = await watcher.next(topics.event("code_expired"), undefined, 40_000);
      expect(received.json()).toStrictEqual({ id: "in-flight" });
      expect(closesLeft).toBe(0);
      for (let i = 0; i < 50 && outbox.size > 0; i++) await sleep(100);
      expect(outbox.size).toBe(0);
      expect(log.lines().filter((l) => l["msg"] === "broker refused an event; dropping it")).toStrictEqual(
        [],
      );
    } finally {
      sender.stop();
      await gateway.stop();
      await watcher.close();
    }
  }, 60_000);
});
