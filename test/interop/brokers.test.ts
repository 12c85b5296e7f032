import { hostname } from "node:os";
import { afterAll, beforeAll, describe, it } from "vitest";
import { sanitiseHostname } from "../../src/config.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { startAedes, startNats, type InteropBroker } from "../helpers/interop-brokers.js";
import { runCoreJourney, startJourneyBed, type JourneyBed } from "./journey.js";

/**
 * The core journey on each broker of README's compatibility table but RabbitMQ (its own file: its node is slow to
 * start), with the shipped bundle and default settings: the agent picks the MQTT version itself.
 */
describe("the core journey on every broker, with default settings", () => {
  let bed: JourneyBed;
  beforeAll(async () => {
    bed = await startJourneyBed();
  });
  afterAll(async () => {
    await bed.close();
  });

  describe("Mosquitto 2", () => {
    let broker: TestBroker;
    beforeAll(async () => {
      broker = await startTestBroker();
    });
    afterAll(async () => {
      await broker.close();
    });

    it("with MQTT 5 (auto)", async () => {
      await runCoreJourney(bed, {
        brokerUrl: broker.url,
        probeVersion: 5,
        expectedVersion: 5,
        deviceId: `mosquitto5-${process.pid}`,
        topicId: `mosquitto5-${process.pid}`,
      });
    });

    it("with MQTT 3.1.1 (forced with EDGE_SIGNIN_MQTT_PROTOCOL_VERSION=4)", async () => {
      await runCoreJourney(bed, {
        brokerUrl: broker.url,
        probeVersion: 4,
        expectedVersion: 4,
        deviceId: `mosquitto4-${process.pid}`,
        topicId: `mosquitto4-${process.pid}`,
        env: { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4" },
      });
    });
  });

  describe("NATS server with MQTT (3.1.1 only)", () => {
    let broker: InteropBroker;
    beforeAll(async () => {
      broker = await startNats();
    });
    afterAll(async () => {
      await broker.close();
    });

    it("falls back to MQTT 3.1.1, with the default device id made from the hostname", async () => {
      await runCoreJourney(bed, {
        brokerUrl: broker.url,
        probeVersion: 4,
        expectedVersion: 4,
        deviceId: undefined,
        topicId: sanitiseHostname(hostname()),
      });
    });
  });

  describe("aedes (3.1.1 only)", () => {
    let broker: InteropBroker;
    beforeAll(async () => {
      broker = await startAedes();
    });
    afterAll(async () => {
      await broker.close();
    });

    it("falls back to MQTT 3.1.1", async () => {
      await runCoreJourney(bed, {
        brokerUrl: broker.url,
        probeVersion: 4,
        expectedVersion: 4,
        deviceId: `aedes-${process.pid}`,
        topicId: `aedes-${process.pid}`,
      });
    });
  });
});
