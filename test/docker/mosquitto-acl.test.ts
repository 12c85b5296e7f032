import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopics, type DeviceTopics } from "../../src/mqtt/topics.js";
import { startCli } from "../helpers/cli.js";
import { appendedUsers, REPO, startComposeBroker, type ComposeBroker, type Role } from "./compose-broker.js";

/**
 * compose.yaml's broker, run from the files in docker/mosquitto/: every client gets only what it needs.
 * A denial is proven by what a permitted subscriber does not receive: it first gets a marker sent after
 * the forbidden message, so by then the forbidden one would have arrived (Mosquitto routes in order).
 */
interface Client {
  readonly mqtt: MqttClient;
  received(topic: string): string[];
  waitFor(topic: string, payload: string): Promise<void>;
}

describe("the compose broker (docker/mosquitto) enforces its ACL", () => {
  let broker: ComposeBroker;
  let topics: DeviceTopics;
  let other: DeviceTopics;
  const clients: MqttClient[] = [];

  const connect = async (role: Role, protocolVersion: 4 | 5 = 5): Promise<Client> => {
    const client = await mqtt.connectAsync(broker.url, {
      ...(await broker.credentials(role)),
      protocolVersion,
      clientId: `${role}-${Math.random().toString(16).slice(2, 10)}`,
      reconnectPeriod: 0,
    });
    clients.push(client);
    const messages: Array<{ topic: string; payload: string }> = [];
    client.on("message", (topic, payload) => messages.push({ topic, payload: payload.toString() }));
    return {
      mqtt: client,
      received: (topic) => messages.filter((m) => m.topic === topic).map((m) => m.payload),
      waitFor: async (topic, payload) => {
        const deadline = Date.now() + 10_000;
        while (!messages.some((m) => m.topic === topic && m.payload === payload)) {
          if (Date.now() > deadline)
            throw new Error(`no "${payload}" on ${topic}; got ${JSON.stringify(messages)}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      },
    };
  };

  /** Subscribes; Mosquitto 2.0 grants it and filters deliveries, a later version may refuse it outright. */
  const subscribe = async (client: Client, filter: string) => {
    await client.mqtt.subscribeAsync(filter, { qos: 1 });
  };

  beforeAll(async () => {
    broker = await startComposeBroker();
    topics = deviceTopics("edge-signin", broker.deviceId);
    other = deviceTopics("edge-signin", "kitchen-tv");
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker?.close();
  });

  it.each([4, 5] as const)(
    "refuses anonymous clients and wrong passwords (MQTT %s)",
    async (protocolVersion) => {
      const refused = async (options: mqtt.IClientOptions) => {
        try {
          const client = await mqtt.connectAsync(broker.url, {
            ...options,
            protocolVersion,
            reconnectPeriod: 0,
          });
          await client.endAsync(true);
          return "connected";
        } catch (error) {
          return (error as { code?: number }).code;
        }
      };
      // 5 = "not authorized" in MQTT 3.1.1; 135 = "not authorized" and 134 = "bad user name or password" in MQTT 5.
      const notAuthorised = protocolVersion === 5 ? [134, 135] : [4, 5];
      expect(notAuthorised).toContain(await refused({}));
      expect(notAuthorised).toContain(
        await refused({
          username: (await broker.credentials("agent")).username,
          password: "not-the-password",
        }),
      );
    },
  );

  it("lets the agent publish its own topics: the display and the event consumer receive them", async () => {
    const agent = await connect("agent");
    const display = await connect("display");
    const events = await connect("events");
    for (const topic of [topics.display, topics.state, topics.availability]) await subscribe(display, topic);
    await subscribe(events, "edge-signin/+/events/#");

    await agent.mqtt.publishAsync(topics.availability, "online", { qos: 1, retain: true });
    await agent.mqtt.publishAsync(topics.state, '{"state":"signed_out"}', { qos: 1, retain: true });
    await agent.mqtt.publishAsync(topics.display, '{"userCode":"ABCD-EFGH"}', { qos: 1, retain: true });
    await agent.mqtt.publishAsync(topics.event("authenticated"), '{"type":"authenticated"}', { qos: 1 });

    await display.waitFor(topics.availability, "online");
    await display.waitFor(topics.state, '{"state":"signed_out"}');
    await display.waitFor(topics.display, '{"userCode":"ABCD-EFGH"}');
    await events.waitFor(topics.event("authenticated"), '{"type":"authenticated"}');
  });

  it("keeps a display from publishing to its display topic", async () => {
    // One connection per user (use_username_as_clientid): the display tries, then reads what is retained.
    const agent = await connect("agent");
    await agent.mqtt.publishAsync(topics.display, "marker", { qos: 1, retain: true });

    // MQTT 5: the broker answers the publish with reason code 135 (not authorized).
    const display = await connect("display");
    await expect(
      display.mqtt.publishAsync(topics.display, "forged", { qos: 1, retain: true }),
    ).rejects.toMatchObject({ code: 135 });
    await display.mqtt.endAsync();
    // MQTT 3.1.1: the publish is acknowledged and silently dropped.
    const legacy = await connect("display", 4);
    await legacy.mqtt.publishAsync(topics.display, "forged-3.1.1", { qos: 1, retain: true });
    await legacy.mqtt.endAsync();

    const watcher = await connect("display");
    await subscribe(watcher, topics.display);
    await watcher.waitFor(topics.display, "marker");
    expect(watcher.received(topics.display)).toStrictEqual(["marker"]);
    await agent.mqtt.publishAsync(topics.display, "", { qos: 1, retain: true });
  });

  it("keeps events (they carry the person's claims) away from a display", async () => {
    const display = await connect("display");
    const agent = await connect("agent");
    // A wildcard over the whole base topic: only what the ACL lets it read may arrive.
    await subscribe(display, `${topics.base}/#`);
    await agent.mqtt.publishAsync(topics.event("authenticated"), "secret-claims", { qos: 1 });
    await agent.mqtt.publishAsync(topics.state, "marker", { qos: 1 });
    await display.waitFor(topics.state, "marker");
    expect(display.received(topics.event("authenticated"))).toStrictEqual([]);
    // The two events that time the next code (the display's countdown) do reach it.
    await agent.mqtt.publishAsync(topics.event("code_expired"), "next-code-at", { qos: 1 });
    await agent.mqtt.publishAsync(topics.event("sign_in_failed"), "retry-at", { qos: 1 });
    await display.waitFor(topics.event("code_expired"), "next-code-at");
    await display.waitFor(topics.event("sign_in_failed"), "retry-at");
  });

  it("lets an agent read its own requests but not another device's", async () => {
    const agent = await connect("agent");
    const controller = await connect("controller");
    await subscribe(agent, "edge-signin/+/request/#");
    await controller.mqtt.publishAsync(`${other.base}/request/sign_out`, "for-the-kitchen", { qos: 1 });
    await controller.mqtt.publishAsync(`${topics.base}/request/sign_out`, "for-me", { qos: 1 });
    await agent.waitFor(`${topics.base}/request/sign_out`, "for-me");
    expect(agent.received(`${other.base}/request/sign_out`)).toStrictEqual([]);
  });

  it("lets an agent read back its own retained availability, state and display, and none of its events", async () => {
    // One connection per user (use_username_as_clientid): the agent publishes, then subscribes on the same one.
    const agent = await connect("agent");
    const own = [topics.availability, topics.state, topics.display];
    for (const topic of own) await agent.mqtt.publishAsync(topic, `own-${topic}`, { qos: 1, retain: true });
    await subscribe(agent, "edge-signin/#");
    for (const topic of own) await agent.waitFor(topic, `own-${topic}`);
    await agent.mqtt.publishAsync(topics.event("authenticated"), "claims", { qos: 1 });
    await agent.mqtt.publishAsync(topics.state, "marker", { qos: 1, retain: true });
    await agent.waitFor(topics.state, "marker");
    expect(agent.received(topics.event("authenticated"))).toStrictEqual([]);
    for (const topic of own) await agent.mqtt.publishAsync(topic, "", { qos: 1, retain: true });
  });

  it("keeps an agent out of another device's topics and a display out of another device's code", async () => {
    const agent = await connect("agent");
    const display = await connect("display");
    const events = await connect("events");
    await subscribe(display, "edge-signin/#");
    await subscribe(events, "edge-signin/+/events/#");
    await expect(agent.mqtt.publishAsync(other.display, "forged", { qos: 1 })).rejects.toMatchObject({
      code: 135,
    });
    await expect(
      agent.mqtt.publishAsync(other.event("authenticated"), "forged", { qos: 1 }),
    ).rejects.toMatchObject({ code: 135 });
    await agent.mqtt.publishAsync(topics.display, "marker", { qos: 1 });
    await agent.mqtt.publishAsync(topics.event("code_issued"), "marker", { qos: 1 });
    await display.waitFor(topics.display, "marker");
    await events.waitFor(topics.event("code_issued"), "marker");
    expect(display.received(other.display)).toStrictEqual([]);
    expect(events.received(other.event("authenticated"))).toStrictEqual([]);
  });

  it("lets the event consumer read events only", async () => {
    const events = await connect("events");
    const agent = await connect("agent");
    await subscribe(events, "edge-signin/#");
    await expect(
      events.mqtt.publishAsync(topics.event("authenticated"), "forged", { qos: 1 }),
    ).rejects.toMatchObject({ code: 135 });
    await agent.mqtt.publishAsync(topics.display, '{"userCode":"WXYZ-ABCD"}', { qos: 1 });
    await agent.mqtt.publishAsync(topics.event("code_issued"), "marker", { qos: 1 });
    await events.waitFor(topics.event("code_issued"), "marker");
    expect(events.received(topics.display)).toStrictEqual([]);
    expect(events.received(topics.event("authenticated"))).toStrictEqual([]);
  });

  it("lets the fleet user read every device's availability and state, nothing else", async () => {
    const fleet = await connect("fleet");
    const agent = await connect("agent");
    await subscribe(fleet, "edge-signin/#");
    await expect(fleet.mqtt.publishAsync(topics.state, "forged", { qos: 1 })).rejects.toMatchObject({
      code: 135,
    });
    await agent.mqtt.publishAsync(topics.display, '{"userCode":"FLEET-NOT"}', { qos: 1 });
    await agent.mqtt.publishAsync(topics.event("authenticated"), "claims", { qos: 1 });
    await agent.mqtt.publishAsync(`${topics.base}/response/sign_out`, "response", { qos: 1 });
    await agent.mqtt.publishAsync(topics.availability, "online", { qos: 1 });
    await agent.mqtt.publishAsync(topics.state, "marker", { qos: 1 });
    await fleet.waitFor(topics.state, "marker");
    expect(fleet.received(topics.availability).at(-1)).toBe("online");
    for (const topic of [topics.display, topics.event("authenticated"), `${topics.base}/response/sign_out`])
      expect(fleet.received(topic)).toStrictEqual([]);
  });

  it("keeps the agent on the broker when another user connects with its client id (finding 4)", async () => {
    const login = await broker.credentials("agent");
    // The agent as it ships, with its default client id; no provider is reachable, which does not matter here.
    const agent = startCli(["agent"], {
      EDGE_SIGNIN_AUTHORITY: "https://127.0.0.1:9/",
      EDGE_SIGNIN_CLIENT_ID: "takeover-test",
      EDGE_SIGNIN_DEVICE_ID: broker.deviceId,
      EDGE_SIGNIN_MQTT_URL: broker.url,
      EDGE_SIGNIN_MQTT_USERNAME: login.username,
      EDGE_SIGNIN_MQTT_PASSWORD: login.password,
      EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(tmpdir(), "edge-signin-takeover-")),
      EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "5",
    });
    try {
      await expect
        .poll(() => agent.stdout(), { timeout: 30_000 })
        .toContain('"msg":"connected to broker with MQTT');
      // The least privileged user, again and again, with every client id the agent could be known by.
      const display = await broker.credentials("display");
      for (const clientId of [
        `edge-signin-${broker.deviceId}`,
        login.username,
        `edge-signin-${broker.deviceId}`,
      ]) {
        const intruder = await mqtt.connectAsync(broker.url, { ...display, clientId, reconnectPeriod: 0 });
        await new Promise((resolve) => setTimeout(resolve, 500));
        await intruder.endAsync();
      }
      // An agent that was kicked off logs its reconnect within about a second; give it three.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const connects = agent
        .stdout()
        .split("\n")
        .filter((l) => l.includes('"msg":"connected to broker with MQTT'));
      expect(connects).toHaveLength(1);
    } finally {
      agent.child.kill("SIGKILL");
      await agent.exited;
    }
  });

  it("adds a second device with its own passwords, leaving the first device's users and the ACL alone (finding 5)", async () => {
    const passwd = join(broker.secrets, "mosquitto_passwd");
    const before = {
      agent: await broker.credentials("agent"),
      display: await broker.credentials("display"),
      acl: await readFile(broker.acl, "utf8"),
      passwd: await readFile(passwd, "utf8"),
    };
    await broker.addDevices("kitchen-tv");
    const kitchen = {
      agent: await broker.credentials("agent", "kitchen-tv"),
      display: await broker.credentials("display", "kitchen-tv"),
    };
    // The first device's passwords are unchanged and still let it in; the new device's are its own.
    expect(await broker.credentials("agent")).toStrictEqual(before.agent);
    expect(await broker.credentials("display")).toStrictEqual(before.display);
    const passwords = [before.agent, before.display, kitchen.agent, kitchen.display].map((c) => c.password);
    expect(new Set(passwords).size).toBe(4);
    for (const login of [before.agent, before.display, kitchen.agent, kitchen.display]) {
      const client = await mqtt.connectAsync(broker.url, { ...login, reconnectPeriod: 0 });
      await client.endAsync();
    }
    // The ACL is untouched (its patterns cover every device); the password file gained the two new users'
    // entries after every existing one, unchanged.
    expect(await readFile(broker.acl, "utf8")).toBe(before.acl);
    const after = await readFile(passwd, "utf8");
    expect(appendedUsers(before.passwd, after)).toStrictEqual(["kitchen-tv", "edge-signin/kitchen-tv"]);
    // And they work: the kitchen agent publishes its own topics, never the living room's.
    const kitchenTopics = deviceTopics("edge-signin", "kitchen-tv");
    const agent = await mqtt.connectAsync(broker.url, {
      ...kitchen.agent,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(agent);
    await agent.publishAsync(kitchenTopics.state, "ok", { qos: 1 });
    await expect(agent.publishAsync(topics.display, "forged", { qos: 1 })).rejects.toMatchObject({
      code: 135,
    });
    // Running it again for the same device changes nothing.
    await broker.addDevices("kitchen-tv");
    expect(await broker.credentials("agent", "kitchen-tv")).toStrictEqual(kitchen.agent);
    expect(await readFile(passwd, "utf8")).toBe(after);
    expect(await readFile(broker.acl, "utf8")).toBe(before.acl);
  });

  it("keeps a display's and the shared users' stray pattern grants from reaching anyone", async () => {
    // Pattern lines apply to every user: `edge-signin/%u/#` would let the display user edge-signin/{device}
    // publish under edge-signin/edge-signin/{device}/, and `events` under edge-signin/events/. Denied.
    const spy = await connect("agent");
    const events = await connect("events");
    const fleet = await connect("fleet");
    await subscribe(spy, "edge-signin/#");
    await subscribe(events, "edge-signin/#");
    await subscribe(fleet, "edge-signin/#");
    const display = await connect("display");
    for (const topic of [`edge-signin/edge-signin/${broker.deviceId}/state`, `${topics.base}/state`])
      await expect(display.mqtt.publishAsync(topic, "forged", { qos: 1 })).rejects.toMatchObject({
        code: 135,
      });
    for (const role of ["events", "controller", "fleet"] as const) {
      const shared = role === "events" ? events : role === "fleet" ? fleet : await connect(role);
      for (const topic of [`edge-signin/${role}/state`, `edge-signin/${role}/events/authenticated`])
        await expect(shared.mqtt.publishAsync(topic, "forged", { qos: 1 })).rejects.toMatchObject({
          code: 135,
        });
    }
  });

  it("shares the events among the consumers of one MQTT 5 shared subscription: each event once", async () => {
    // A client's id is its user name (use_username_as_clientid), so each consumer has its own user: the
    // script's --consumers 3 adds events-1 ... events-3, each with the `events` user's rights.
    await broker.addDevices("--consumers", "3");
    const consumers: Client[] = [];
    for (const role of ["events-1", "events-2", "events-3"] as const) consumers.push(await connect(role));
    for (const consumer of consumers) await subscribe(consumer, "$share/backend/edge-signin/+/events/#");
    const agent = await connect("agent");
    const ids = Array.from({ length: 60 }, (_, i) => `event-${i}`);
    for (const id of ids)
      await agent.mqtt.publishAsync(topics.event("code_issued"), JSON.stringify({ id }), { qos: 1 });
    const received = () =>
      consumers.map((c) =>
        c.received(topics.event("code_issued")).map((p) => (JSON.parse(p) as { id: string }).id),
      );
    await expect.poll(() => received().flat().length, { timeout: 10_000 }).toBe(ids.length);
    // Each event exactly once across the group, and every consumer took a share.
    expect(received().flat().sort()).toStrictEqual([...ids].sort());
    for (const share of received()) expect(share.length).toBeGreaterThan(0);
  });

  it("passes compose.yaml's broker healthcheck, which fails when no broker answers", async () => {
    const compose = parse(await readFile(join(REPO, "compose.yaml"), "utf8")) as {
      services: { mosquitto: { healthcheck: { test: [string, string] } } };
    };
    const [kind, command] = compose.services.mosquitto.healthcheck.test;
    expect(kind).toBe("CMD-SHELL");
    // Compose turns `$$` into `$`; the container's port 1883 is this broker's port here.
    const port = new URL(broker.url).port;
    const shell = (target: string) =>
      promisify(execFile)("sh", [
        "-c",
        command.replaceAll("$$", "$").replace("-p 1883", `-p ${target}`),
      ]).then(
        () => 0,
        (error: { code?: number }) => error.code ?? -1,
      );
    expect(await shell(port)).toBe(0);
    expect(await shell("1")).not.toBe(0);
  });
});
