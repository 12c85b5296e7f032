import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DisplayPayload, EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

/**
 * Two Mosquitto containers stand for two nodes of a cluster (no bridge between them: what the agent re-publishes on
 * the second node is all a subscriber there can see). The agent runs the shipped bundle with both URLs.
 */
describe("failover across broker nodes", () => {
  const used = useTestBed();
  let nodeB: TestBroker;

  beforeAll(async () => {
    nodeB = await startTestBroker();
  });
  afterAll(async () => {
    await nodeB?.close();
  });

  /** A subscriber that comes late to a node: it sees only what is retained there. */
  async function lateSubscriber(url: string, filter: string): Promise<MqttProbe> {
    const late = await connectProbe(url);
    used.afterThisTest(() => late.close());
    await late.subscribe(filter);
    return late;
  }

  it("moves to the next node when its node is lost while a code is on screen, and signs the person in there", async () => {
    const nodeA = used.bed.broker;
    const agent = await used.startAgent({ EDGE_SIGNIN_MQTT_URL: `${nodeA.url},${nodeB.url}` });
    const { topics } = agent;
    const deviceId = agent.env["EDGE_SIGNIN_DEVICE_ID"];
    const onA = await agent.prompt();
    await agent.state((s) => s.state === "awaiting_user");

    await nodeA.stop();
    used.afterThisTest(() => nodeA.start());

    // On the second node: the same code, retained, for a display that subscribes only now.
    const late = await lateSubscriber(nodeB.url, `${topics.base}/#`);
    const onB = (await late.next(topics.display, (m) => m.payload.length > 0, 30_000)).json<DisplayPayload>();
    expect(onB).toStrictEqual(onA);
    expect((await late.next(topics.availability, undefined, 10_000)).payload.toString()).toBe("online");
    const awaiting = (await late.next(topics.state, undefined, 10_000)).json<StatePayload>();
    expect(awaiting.state).toBe("awaiting_user");

    const event = late.next(topics.event("authenticated"), undefined, 30_000);
    await approveSignIn(onB.verificationUri, onB.userCode, { ca: used.bed.idp.caPem, login: "alice" });
    const authenticated = (await event).json<EventPayload<"authenticated">>();
    expect(authenticated).toMatchObject({ type: "authenticated", deviceId, method: "device_code" });
    expect(authenticated.account.username).toBe("alice@example.com");

    // What a display that starts after the sign-in reads on the second node.
    const later = await lateSubscriber(nodeB.url, `${topics.base}/#`);
    const signedIn = (
      await later.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in", 10_000)
    ).json<StatePayload>();
    expect(signedIn).toMatchObject({ state: "signed_in", deviceId });
    // The code is gone from the display topic once signed in (an empty retained message, or none at all).
    expect(later.all(topics.display).every((m) => m.payload.length === 0)).toBe(true);
    expect(await agent.stop()).toBe(0);
  });
});
