import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { deviceTopics, type DisplayPayload, type EventPayload } from "../../src/mqtt/topics.js";
import { eventually } from "../helpers/agent-process.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

interface StoredEvent {
  topic: string;
  payload: { id: string; type: string };
}

async function outboxOnDisk(stateDir: string): Promise<StoredEvent[]> {
  const dir = join(stateDir, "outbox");
  const names = (await readdir(dir).catch(() => [])).filter((n) => n.endsWith(".json")).sort();
  // The agent removes an entry once it is acknowledged, possibly between the listing and the read.
  const read = await Promise.all(
    names.map((n) =>
      readFile(join(dir, n), "utf8").then(
        (text) => JSON.parse(text) as StoredEvent,
        () => undefined,
      ),
    ),
  );
  return read.filter((entry) => entry !== undefined);
}

describe("the agent process, killed and started again", () => {
  const { bed } = useTestBed({ probe: false });
  const running: RunningCli[] = [];
  const probes: MqttProbe[] = [];

  // Runs before useTestBed's afterAll closes the bed.
  afterAll(async () => {
    for (const cli of running) cli.child.kill("SIGKILL");
    for (const p of probes) await p.close();
  });

  async function watch(filter: string): Promise<MqttProbe> {
    const p = await connectProbe(bed.broker.url);
    probes.push(p);
    await p.subscribe(filter);
    return p;
  }

  it("delivers an authenticated event that was only on disk when the agent was SIGKILLed", async () => {
    const stateDir = await mkdtemp(join(bed.stateDir, "crash-"));
    const env = bed.env({ EDGE_SIGNIN_STATE_DIR: stateDir });
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const before = await watch(`${topics.base}/#`);
    const first = startCli(["agent"], env);
    running.push(first);
    const display = (
      await before.next(topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();

    // The broker goes away, the person approves: the event can only go to the outbox.
    await bed.broker.stop();
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "erin" });
    const stored = await eventually(
      async () => (await outboxOnDisk(stateDir)).find((e) => e.payload.type === "authenticated"),
      "the authenticated event is in the outbox",
    );
    expect(stored.topic).toBe(topics.event("authenticated"));
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");

    await bed.broker.start();
    const after = await watch(`${topics.base}/events/#`);
    const second = startCli(["agent"], env);
    running.push(second);
    const event = (await after.next(topics.event("authenticated"), undefined, 45_000)).json<
      EventPayload<"authenticated">
    >();
    expect(event).toMatchObject({ id: stored.payload.id, type: "authenticated", claims: { sub: "erin" } });
    await eventually(
      async () =>
        (await outboxOnDisk(stateDir)).some((e) => e.payload.id === stored.payload.id) ? undefined : true,
      "the delivered event leaves the outbox",
    );
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });
});
