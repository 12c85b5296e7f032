import { describe, expect, it } from "vitest";
import { eventually, startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";
import { startSlowLink } from "../helpers/slow-link.js";

/** The round trip of the field report: NB-IoT and congested GPRS links measured 5.4 s. */
const ROUND_TRIP_MS = 5_400;

describe("the agent over a slow link", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  it("connects over a 5.4 s round trip within a minute, and on MQTT 5 when the broker speaks it", async () => {
    const link = await startSlowLink(bed.broker.url, ROUND_TRIP_MS);
    used.afterThisTest(() => link.close());
    const agent = startAgentProcess(used, bed.env({ EDGE_SIGNIN_MQTT_URL: link.url }));
    const online = await probe.next(
      agent.topics.availability,
      (m) => m.payload.toString() === "online",
      60_000,
    );
    expect(online.payload.toString()).toBe("online");
    const connected = await eventually(
      () => agent.logLines().find((l) => String(l["msg"]).startsWith("connected to broker")),
      "the agent's log says it connected",
      5_000,
    );
    expect(connected).toMatchObject({ protocolVersion: 5, msg: "connected to broker with MQTT 5" });
    // No attempt was taken for a refusal of MQTT 5.
    expect(agent.logLines().filter((l) => String(l["msg"]).includes("MQTT 3.1.1"))).toStrictEqual([]);
  }, 90_000);
});
