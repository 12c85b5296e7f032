import { afterAll, beforeAll, describe, it } from "vitest";
import { startRabbitMq, type InteropBroker } from "../helpers/interop-brokers.js";
import { runCoreJourney, startJourneyBed, type JourneyBed } from "./journey.js";

/** RabbitMQ's MQTT plugin (3.1.1 only; it closes an MQTT 5 CONNECT without a CONNACK): one private node per file. */
describe("the core journey on RabbitMQ 3.10 with rabbitmq_mqtt, default settings", () => {
  let bed: JourneyBed;
  let broker: InteropBroker;
  beforeAll(async () => {
    [bed, broker] = await Promise.all([startJourneyBed(), startRabbitMq()]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([bed.close(), broker.close()]);
  }, 60_000);

  it("falls back to MQTT 3.1.1 after the silent close", async () => {
    await runCoreJourney(bed, {
      brokerUrl: broker.url,
      probeVersion: 4,
      expectedVersion: 4,
      deviceId: `rabbit-${process.pid}`,
      topicId: `rabbit-${process.pid}`,
    });
  });
});
