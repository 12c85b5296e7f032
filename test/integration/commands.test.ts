import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import { loadConfig } from "../../src/config/index.js";
import { approveSignIn } from "../../src/dev/person.js";
import type { CommandResponse } from "../../src/requests/commands.js";
import {
  deviceTopics,
  type DeviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

type Ask = (command: string, body?: Record<string, unknown>) => Promise<CommandResponse>;

describe("commands over MQTT (request / response)", () => {
  // Each test its own probe, speaking the MQTT version under test.
  const { bed, newAgent, afterThisTest } = useTestBed({ probe: false });

  async function setUp(protocolVersion: 4 | 5) {
    // Requesters here name response topics under `replies/`, which the agent allows only when configured.
    const env = bed.env({
      EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: String(protocolVersion),
      EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "replies",
    });
    const config = loadConfig(env);
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const probe = await connectProbe(bed.broker.url, { protocolVersion });
    afterThisTest(() => probe.close());
    await probe.subscribe(`${topics.base}/#`);
    await probe.subscribe("replies/#");
    const agent = newAgent(config);
    await agent.start();
    return { env, config, topics, probe, agent };
  }

  /** MQTT 5: answers on the request's response topic, with its correlation data. */
  function askV5(probe: MqttProbe, topics: DeviceTopics, timeoutMs?: number): Ask {
    return async (command, body) => {
      const correlation = Buffer.from(randomUUID());
      const replyTo = `replies/${randomUUID()}`;
      await probe.publish(topics.request(command), body ? JSON.stringify(body) : "", {
        properties: { responseTopic: replyTo, correlationData: correlation },
      });
      const answer = await probe.next(replyTo, undefined, timeoutMs);
      expect(answer.properties?.correlationData).toStrictEqual(correlation);
      return answer.json<CommandResponse>();
    };
  }

  /** MQTT 3.1.1: answers on `{base}/response/{command}`, echoing `transaction`. */
  function askV4(probe: MqttProbe, topics: DeviceTopics): Ask {
    return async (command, body = {}) => {
      const transaction = randomUUID();
      await probe.publish(topics.request(command), JSON.stringify({ ...body, transaction }));
      const answer = await probe.next(
        topics.response(command),
        (m) => m.json<CommandResponse>().transaction === transaction,
      );
      return answer.json<CommandResponse>();
    };
  }

  /** Every command, in the order a person at a TV would meet them. */
  async function everyCommand(ask: Ask, probe: MqttProbe, topics: DeviceTopics, stateDir: string) {
    const awaiting = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user");
    const firstCode = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    expect(await ask("status")).toMatchObject({
      status: "ok",
      data: { state: "awaiting_user", idle: false, expiresAt: awaiting.json<StatePayload>().expiresAt },
    });
    expect(await ask("sign-in")).toMatchObject({
      status: "error",
      error: expect.stringContaining(`a code is already shown (${firstCode.userCode}`),
    });
    expect(await ask("refresh")).toMatchObject({ status: "error", error: "not signed in" });
    expect(await ask("sign-out")).toMatchObject({ status: "error", error: "not signed in" });

    expect(await ask("cancel")).toMatchObject({ status: "ok", data: { state: "signed_out", idle: true } });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    // The retained state says so too: a display can tell "paused" from "getting a code".
    const paused = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_out");
    expect(paused.json<StatePayload>()).toMatchObject({ state: "signed_out", idle: true });
    expect(await ask("cancel")).toMatchObject({ status: "error", error: "no sign-in to cancel" });
    expect(await ask("status")).toMatchObject({ status: "ok", data: { state: "signed_out", idle: true } });

    expect(await ask("sign-in")).toMatchObject({ status: "ok", data: { idle: false } });
    const code = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(code.userCode).not.toBe(firstCode.userCode);
    expect(probe.all(topics.state).at(-1)?.json<StatePayload>().idle).toBeUndefined();
    await approveSignIn(code.verificationUri, code.userCode, { ca: bed.idp.caPem, login: "alice" });
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");

    expect(await ask("status")).toMatchObject({
      status: "ok",
      data: { state: "signed_in", account: { name: "Alice", username: "alice@example.com" } },
    });
    expect(await ask("sign-in")).toMatchObject({
      status: "error",
      // Not who (the answer is logged, and no claim reaches a log); `status` says who, to the requester.
      error: "already signed in; sign out first",
    });
    expect(await ask("refresh")).toMatchObject({ status: "ok", data: { account: { name: "Alice" } } });
    const refreshed = await probe.next(
      topics.event("authenticated"),
      (m) => m.json<{ method: string }>().method === "refresh",
    );
    expect(refreshed.json<EventPayload<"authenticated">>().claims["sub"]).toBe("alice");

    expect(await ask("sign-out")).toMatchObject({ status: "ok", data: { state: "signed_out" } });
    const signedOut = (await probe.next(topics.event("signed_out"))).json<EventPayload<"signed_out">>();
    expect(signedOut).toMatchObject({ reason: "requested", message: "signed out on request" });
    // A new code at once, and the account is gone from the cache on disk.
    await probe.next(topics.display, (m) => m.payload.length > 0);
    const cache = JSON.parse(await readFile(join(stateDir, CACHE_FILE), "utf8")) as Record<string, object>;
    expect(cache["Account"]).toStrictEqual({});
    expect(cache["RefreshToken"]).toStrictEqual({});
  }

  it("runs every command with MQTT 5 response topics and correlation data", async () => {
    const { env, topics, probe } = await setUp(5);
    await everyCommand(askV5(probe, topics), probe, topics, env["EDGE_SIGNIN_STATE_DIR"] ?? "");
    // Nothing went to the default response topics: each answer took the requested route.
    expect(probe.all(`${topics.base}/response/status`)).toStrictEqual([]);
  });

  it("runs every command on MQTT 3.1.1 with the transaction field", async () => {
    const { env, topics, probe } = await setUp(4);
    await everyCommand(askV4(probe, topics), probe, topics, env["EDGE_SIGNIN_STATE_DIR"] ?? "");
  });

  it("answers hundreds of malformed requests with errors and changes nothing", async () => {
    const { topics, probe, agent } = await setUp(5);
    const prompt = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user");
    const stateBefore = agent.state;
    const statesBefore = probe.all(topics.state).length;

    const malformed = fc.sample(
      fc.oneof(
        fc.record({
          command: fc.constantFrom("status", "sign-in", "cancel", "sign-out", "refresh"),
          payload: fc.oneof(
            fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.concat([Buffer.from("{"), b])),
            fc
              .constantFrom("[]", "null", "42", '"cancel"', '{"transaction":true}', '{"now":1}')
              .map((text) => Buffer.from(text)),
            fc.constant(Buffer.alloc(5000, "{")),
          ),
        }),
        fc.record({
          command: fc
            .stringMatching(/^[a-z_]{1,16}$/)
            .filter((c) => !["status", "cancel", "refresh"].includes(c)),
          payload: fc.constant(Buffer.from("{}")),
        }),
      ),
      { numRuns: 300, seed: 20261125 },
    );
    const replyTo = "replies/malformed";
    await Promise.all(
      malformed.map((request, i) =>
        probe.publish(topics.request(request.command), request.payload, {
          properties: { responseTopic: replyTo, correlationData: Buffer.from(String(i)) },
        }),
      ),
    );
    await expect
      .poll(() => probe.all(replyTo).length, { timeout: 30_000, interval: 200 })
      .toBe(malformed.length);
    const answers = probe.all(replyTo);
    expect(new Set(answers.map((m) => m.properties?.correlationData?.toString()))).toHaveLength(
      malformed.length,
    );
    for (const answer of answers)
      expect(answer.json<CommandResponse>()).toStrictEqual({ status: "error", error: expect.any(String) });

    // The agent is where it was: same code on screen, no new state message, still answering.
    expect(agent.state).toBe(stateBefore);
    expect(agent.currentPrompt?.userCode).toBe(prompt.userCode);
    expect(probe.all(topics.state)).toHaveLength(statesBefore);
    expect(await askV5(probe, topics)("status")).toMatchObject({
      status: "ok",
      data: { state: "awaiting_user" },
    });
  });

  it("takes commands again after the broker restarts (subscription renewed on reconnect)", async () => {
    const { topics, probe } = await setUp(5);
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user");
    await bed.broker.stop();
    await bed.broker.start();
    // The probe is back once its own subscription is acknowledged again.
    await probe.subscribe("replies/#");
    // A request that lands between the agent's reconnect and its renewed subscription is lost (clean
    // session, QoS 1 to no subscriber), so ask until one is answered.
    await expect
      .poll(async () => (await askV5(probe, topics, 2_000)("status").catch(() => undefined))?.status, {
        timeout: 30_000,
      })
      .toBe("ok");
  });
});
