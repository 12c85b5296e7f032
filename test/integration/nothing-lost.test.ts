import { eventually as waitFor } from "../helpers/eventually.js";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { Authenticated } from "../../src/events.js";
import { MqttGateway } from "../../src/mqtt/gateway.js";
import { Outbox } from "../../src/storage/outbox.js";
import { OutboxSender } from "../../src/mqtt/outbox-sender.js";
import {
  deviceTopics,
  isEventTopic,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { startFaultyFront, type Fault } from "../helpers/faulty-front.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";

/** What the outbox directory holds now, oldest first. */
async function outboxOnDisk(
  stateDir: string,
): Promise<Array<{ topic: string; payload: { id: string; type: string } }>> {
  const dir = join(stateDir, "outbox");
  const names = (await readdir(dir).catch(() => [])).filter((n) => n.endsWith(".json")).sort();
  // The agent removes an entry once it is acknowledged, possibly between the listing and the read.
  const read = await Promise.all(
    names.map((n) =>
      readFile(join(dir, n), "utf8").then(
        (text) => JSON.parse(text) as { topic: string; payload: { id: string; type: string } },
        () => undefined,
      ),
    ),
  );
  return read.filter((entry) => entry !== undefined);
}

async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(check, what, timeoutMs, 100);
}

describe("nothing lost: broker outages", () => {
  const { bed, probe, newAgent, afterThisTest } = useTestBed();
  let gate: TcpGate;

  beforeAll(async () => {
    gate = await startTcpGate(bed.broker.url);
  });
  // Runs before useTestBed's afterEach: the agent is stopped with its way to the broker open.
  afterEach(() => gate.release());
  afterAll(async () => {
    await gate.close();
  });

  /** An agent reaching the broker through the gate, with a state directory of its own. */
  async function startAgent(overrides: Record<string, string> = {}) {
    const stateDir = await mkdtemp(join(bed.stateDir, "agent-"));
    const log = captureLogger();
    const config = bed.config({
      EDGE_SIGNIN_MQTT_URL: gate.url,
      EDGE_SIGNIN_STATE_DIR: stateDir,
      ...overrides,
    });
    const agent = newAgent(config, log.logger);
    await agent.start();
    return { agent, config, stateDir, log, topics: deviceTopics(config.topicPrefix, config.deviceId) };
  }

  async function watch(filter: string): Promise<MqttProbe> {
    const p = await connectProbe(bed.broker.url);
    afterThisTest(() => p.close());
    await p.subscribe(filter);
    return p;
  }

  it("re-publishes the prompt with its remaining expiry, the state and availability after a broker restart", async () => {
    const { topics, log } = await startAgent();
    const shown = await probe.next(topics.display, (m) => m.payload.length > 0);
    const display = shown.json<DisplayPayload>();

    await bed.broker.stop();
    await sleep(2_500);
    await bed.broker.start();

    // A display that connects after the restart: Mosquitto kept nothing, so only the agent can have sent this.
    const screen = await watch(`${topics.base}/#`);
    const back = await screen.next(topics.display, (m) => m.payload.length > 0, 45_000);
    expect(back.json<DisplayPayload>()).toStrictEqual(display);
    const secondsLeft = (Date.parse(display.expiresAt) - Date.now()) / 1000;
    expect(back.properties?.messageExpiryInterval).toBeLessThanOrEqual(Math.ceil(secondsLeft) + 1);
    expect(back.properties?.messageExpiryInterval).toBeGreaterThan(secondsLeft - 10);
    expect(back.properties?.messageExpiryInterval).toBeLessThan(
      (shown.properties?.messageExpiryInterval ?? 0) - 2,
    );
    expect((await screen.next(topics.availability)).payload.toString()).toBe("online");
    expect((await screen.next(topics.state)).json<StatePayload>()).toMatchObject({
      state: "awaiting_user",
      expiresAt: display.expiresAt,
    });

    // Reconnect attempts backed off: 1 s, then 2 s, 4 s, ... (the log names the wait before the next one).
    const waits = log
      .lines()
      .filter((l) => l["msg"] === "reconnecting to broker")
      .map((l) => l["nextAttemptInMs"]);
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(waits).toStrictEqual(waits.map((_, i) => Math.min(2_000 * 2 ** i, 30_000)));
  });

  it("delivers an authenticated event raised while the broker was down exactly once, after it is back", async () => {
    const { agent: running, topics, stateDir } = await startAgent();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    await bed.broker.stop();
    const authenticated = new Promise<Authenticated>((resolve) => running.once("authenticated", resolve));
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "carol" });
    await authenticated;
    // On disk before anyone could publish it.
    const held = (await outboxOnDisk(stateDir)).filter((e) => e.payload.type === "authenticated");
    expect(held).toHaveLength(1);
    const id = held[0]?.payload.id;

    // Our subscriber first, then the agent may reach the restarted broker.
    gate.hold();
    await bed.broker.start();
    const watcher = await watch(`${topics.base}/#`);
    gate.release();

    const event = (await watcher.next(topics.event("authenticated"), undefined, 45_000)).json<
      EventPayload<"authenticated">
    >();
    expect(event).toMatchObject({ id, type: "authenticated", claims: { sub: "carol" } });
    await watcher.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    await eventually(async () => (await outboxOnDisk(stateDir)).length === 0, "the outbox is empty");
    await sleep(1_000);
    const perId = new Map<string, number>();
    for (const m of watcher.all(topics.event("authenticated"))) {
      const eventId = m.json<{ id: string }>().id;
      perId.set(eventId, (perId.get(eventId) ?? 0) + 1);
    }
    expect(Object.fromEntries(perId)).toStrictEqual({ [id ?? ""]: 1 });
  });
});

describe("nothing lost: the outbox and a real broker", () => {
  const { bed } = useTestBed({ probe: false });

  it("delivers events raised during an outage in order, each once", async () => {
    const gate = await startTcpGate(bed.broker.url);
    const stateDir = await mkdtemp(join(bed.stateDir, "outbox-"));
    const config = bed.config({ EDGE_SIGNIN_STATE_DIR: stateDir, EDGE_SIGNIN_MQTT_URL: gate.url });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const log = captureLogger().logger;
    const gateway = new MqttGateway(config.mqtt, topics, log);
    const outbox = new Outbox(
      join(stateDir, "outbox"),
      { maxEvents: 1000, accepts: (topic) => isEventTopic(topics, topic) },
      log,
    );
    outbox.open();
    const sender = new OutboxSender(outbox, gateway, log);
    gateway.on("connect", () => sender.kick());
    await gateway.start();

    await bed.broker.stop();
    const ids = Array.from({ length: 30 }, (_, i) => `event-${String(i).padStart(2, "0")}`);
    for (const id of ids) {
      outbox.append(topics.event("code_expired"), { id });
      sender.kick();
    }
    gate.hold();
    await bed.broker.start();
    const watcher = await connectProbe(bed.broker.url);
    try {
      await watcher.subscribe(topics.event("code_expired"));
      gate.release();
      await watcher.next(
        topics.event("code_expired"),
        (m) => m.json<{ id: string }>().id === ids.at(-1),
        45_000,
      );
      const received = watcher.all(topics.event("code_expired")).map((m) => m.json<{ id: string }>().id);
      expect(received).toStrictEqual(ids);
      await eventually(() => outbox.size === 0, "every event is acknowledged");
    } finally {
      sender.stop();
      await gateway.stop();
      await watcher.close();
      await gate.close();
    }
  });
});

describe("nothing lost: identity provider trouble while a code is on screen", () => {
  const { bed, probe, newAgent, afterThisTest } = useTestBed();

  it("keeps polling the same code through 503s, resets and a timeout, and completes it", async () => {
    const front = await startFaultyFront(bed.idp, bed.stateDir);
    // Registered before the agent: the agent stops first, then the front it polls closes.
    afterThisTest(() => front.close());
    const log = captureLogger();
    const config = bed.config({
      EDGE_SIGNIN_AUTHORITY: front.authority,
      EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
      EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "agent-")),
      EDGE_SIGNIN_HTTP_TIMEOUT_SECONDS: "2",
    });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    await newAgent(config, log.logger).start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    const faults: Fault[] = ["503-json", "503-json", "reset", "503-html", "reset", "hang", "503-json"];
    const pollsBefore = front.polls();
    await front.failPolls(faults);
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "dave" });

    const event = (await probe.next(topics.event("authenticated"), undefined, 60_000)).json<
      EventPayload<"authenticated">
    >();
    expect(event.claims).toMatchObject({ sub: "dave" });
    expect(front.polls() - pollsBefore).toBeGreaterThan(faults.length);
    // One code the whole time: never replaced, never reported as failed or expired.
    const shown = probe.all(topics.display).filter((m) => m.payload.length > 0);
    expect(shown.map((m) => m.json<DisplayPayload>().userCode)).toStrictEqual([display.userCode]);
    expect(probe.all(topics.event("sign_in_failed"))).toStrictEqual([]);
    expect(probe.all(topics.event("code_expired"))).toStrictEqual([]);
    const warnings = log
      .lines()
      .filter(
        (l) =>
          l["msg"] ===
          "identity provider trouble while polling; keeping the code on screen and polling again later",
      );
    // One warning for each fault at least; on a busy machine a healthy poll may also outlast the 2 s timeout, and
    // that is trouble too, said the same way (the full .ci/run under stress-ng found 8 for 7 faults).
    expect(warnings.length).toBeGreaterThanOrEqual(faults.length);
    expect(log.text()).not.toMatch(/device_code=/);
  });
});
