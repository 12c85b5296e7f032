import { hostname } from "node:os";
import { afterAll, beforeAll, describe, it } from "vitest";
import { sanitiseHostname } from "../../src/config/index.js";
import { startTestBroker } from "../helpers/broker.js";
import { startAedes, startNats } from "../helpers/interop-brokers.js";
import { runCoreJourney, startJourneyBed, type JourneyBed, type JourneyOptions } from "./journey.js";

interface BrokerCase extends Omit<JourneyOptions, "brokerUrl"> {
  readonly name: string;
  readonly start: () => Promise<{ readonly url: string; close(): Promise<void> }>;
}

const id = (name: string) => ({ deviceId: `${name}-${process.pid}`, topicId: `${name}-${process.pid}` });

/**
 * Every broker of README's compatibility table but RabbitMQ (its own file: its node is slow to start), each started
 * by the test on free loopback ports: the core journey with the shipped bundle and default settings, where the agent
 * picks the MQTT version itself.
 */
const CASES: readonly BrokerCase[] = [
  {
    name: "Mosquitto 2, MQTT 5 (auto)",
    start: () => startTestBroker(),
    probeVersion: 5,
    expectedVersion: 5,
    ...id("mosquitto5"),
  },
  {
    name: "Mosquitto 2, MQTT 3.1.1 (EDGE_SIGNIN_MQTT_PROTOCOL_VERSION=4)",
    start: () => startTestBroker(),
    probeVersion: 4,
    expectedVersion: 4,
    ...id("mosquitto4"),
    env: { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4" },
  },
  {
    // The default device id (the hostname, made safe): what a new user on a NATS broker gets.
    name: "NATS server with MQTT (3.1.1 only), default device id",
    start: startNats,
    probeVersion: 4,
    expectedVersion: 4,
    deviceId: undefined,
    topicId: sanitiseHostname(hostname()),
  },
  {
    name: "aedes (3.1.1 only)",
    start: () => startAedes(),
    probeVersion: 4,
    expectedVersion: 4,
    ...id("aedes"),
  },
];

describe("the core journey on every broker, with default settings", () => {
  let bed: JourneyBed;
  beforeAll(async () => {
    bed = await startJourneyBed();
  });
  afterAll(async () => {
    await bed.close();
  });

  describe.each(CASES)("$name", ({ start, name: _name, ...journey }) => {
    let broker: Awaited<ReturnType<BrokerCase["start"]>>;
    beforeAll(async () => {
      broker = await start();
    });
    afterAll(async () => {
      await broker.close();
    });

    it("shows the code to a late display, signs in, clears it, answers a command, and leaves a last will", async () => {
      await runCoreJourney(bed, { ...journey, brokerUrl: broker.url });
    });
  });
});
