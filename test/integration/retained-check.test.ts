/**
 * The agent reads its own retained topics back and corrects what the broker holds wrongly: a clustered broker may
 * acknowledge a retained message and lose it (NATS 2.9 during a stream leader election), or store a lost
 * connection's last will after the new `online`. Here another client writes the outdated copies, as the cluster
 * would have, on a real Mosquitto; the agent is the shipped bundle.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { DisplayPayload, StatePayload } from "../../src/mqtt/topics.js";
import { command } from "../helpers/agent-process.js";
import { connectProbe } from "../helpers/mqtt-probe.js";
import { useTestBed } from "../helpers/fixture.js";

describe("the agent checks that the broker kept its retained messages (shipped bundle)", () => {
  const used = useTestBed();
  const { bed } = used;

  /** What a subscriber that starts now reads on `topics` (retained copies only), after a moment. */
  async function lateRead(topics: readonly string[]): Promise<Map<string, string>> {
    const late = await connectProbe(bed.broker.url);
    try {
      for (const topic of topics) await late.subscribe(topic);
      await sleep(500);
      return new Map(
        topics.map((topic) => [
          topic,
          late
            .all(topic)
            .filter((m) => m.retain)
            .at(-1)
            ?.payload.toString() ?? "",
        ]),
      );
    } finally {
      await late.close();
    }
  }

  it("puts back its availability, state and code when the broker holds outdated copies", async () => {
    const agent = await used.startAgent();
    const prompt: DisplayPayload = await agent.prompt();
    const current = await agent.state((s) => s.state === "awaiting_user");
    const { topics } = agent;
    // What the cluster would hand a late display: the will of a lost connection, a state and code it lost.
    const stale: StatePayload = {
      state: "signed_out",
      since: "2026-01-01T00:00:00.000Z",
      deviceId: current.deviceId,
    };
    await agent.probe.publish(topics.availability, "offline", { qos: 1, retain: true });
    await agent.probe.publish(topics.state, JSON.stringify(stale), { qos: 1, retain: true });
    await agent.probe.publish(topics.display, "", { qos: 1, retain: true });

    // Read back within about 10 s of its last retained message; bounded well past that.
    const deadline = Date.now() + 40_000;
    let seen = new Map<string, string>();
    do {
      await sleep(2_000);
      seen = await lateRead([topics.availability, topics.state, topics.display]);
    } while (seen.get(topics.availability) !== "online" && Date.now() < deadline);
    expect(seen.get(topics.availability)).toBe("online");
    expect(JSON.parse(seen.get(topics.state) ?? "{}")).toMatchObject({
      state: "awaiting_user",
      since: current.since,
    });
    expect(JSON.parse(seen.get(topics.display) ?? "{}")).toMatchObject({ userCode: prompt.userCode });
    const warned = agent
      .logLines()
      .filter((line) => String(line["msg"]).startsWith("the broker holds outdated retained messages"));
    expect(warned.length).toBeGreaterThanOrEqual(1);
  });

  it("sends nothing again when the broker kept everything", async () => {
    const agent = await used.startAgent();
    await agent.prompt();
    const { topics } = agent;
    await sleep(1_000);
    const count = () =>
      [topics.availability, topics.state, topics.display].map((t) => agent.probe.all(t).length);
    const before = count();
    // Past the read-back (10 s after the last retained message, 1.5 s to read): nothing re-sent, nothing warned.
    await sleep(15_000);
    expect(count()).toStrictEqual(before);
    expect(agent.logLines().filter((line) => String(line["msg"]).includes("retained"))).toStrictEqual([]);
  });

  it("takes a state that changed while it read back for a race, not a lost message (one healthy Mosquitto)", async () => {
    const agent = await used.startAgent();
    await agent.prompt();
    const { topics } = agent;
    // State changes about every 0.6 s (within the command rate limit) for longer than a read-back takes to come
    // round (10 s after a change, 1.5 s to read): some change lands inside the read.
    const readBacks = () =>
      agent.logLines().filter((line) => line["msg"] === "read back the broker's copies of our topics");
    for (let i = 0; i < 40 && !readBacks().some((l) => (l["raced"] as unknown[]).length > 0); i++) {
      await command(used, topics, i % 2 === 0 ? "cancel" : "sign-in");
      await sleep(600);
    }
    const warned = agent
      .logLines()
      .filter((line) => String(line["msg"]).startsWith("the broker holds outdated retained messages"));
    expect(warned).toStrictEqual([]);
    expect(readBacks().some((l) => (l["raced"] as unknown[]).length > 0)).toBe(true);
  }, 60_000);
});
