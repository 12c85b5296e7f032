import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../src/agent.js";
import { approveSignIn, declineSignIn } from "../../src/dev/person.js";
import type { Authenticated } from "../../src/events.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { captureLogger, startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("agent against Mosquitto and a real OpenID provider", () => {
  let bed: TestBed;
  let probe: MqttProbe;
  let agent: Agent | undefined;

  beforeAll(async () => {
    bed = await startTestBed();
    probe = await connectProbe(bed.broker.url);
    await probe.subscribe("edge-signin/#");
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });
  afterAll(async () => {
    await probe.close();
    await bed.close();
  });

  it("shows the code on the display topic and publishes who signed in", async () => {
    const log = captureLogger();
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: log.logger });
    const inProcess = new Promise<Authenticated>((resolve) => agent?.once("authenticated", resolve));
    await agent.start();

    expect((await probe.next(topics.availability)).payload.toString()).toBe("online");
    const shown = await probe.next(topics.display, (m) => m.payload.length > 0);
    expect(shown.retain).toBe(false); // live delivery to an existing subscriber
    expect(shown.properties?.messageExpiryInterval).toBeGreaterThan(500);
    const display = shown.json<DisplayPayload>();
    expect(display).toStrictEqual({
      deviceId: config.deviceId,
      userCode: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/),
      verificationUri: expect.stringMatching(/^https:\/\/(localhost|127\.0\.0\.1):\d+\/device$/),
      message: expect.stringContaining(display.userCode),
      issuedAt: expect.stringMatching(ISO),
      expiresAt: expect.stringMatching(ISO),
    });
    const awaiting = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user");
    expect(awaiting.json<StatePayload>().expiresAt).toBe(display.expiresAt);

    // A display that connects late still gets the retained prompt.
    const lateDisplay = await connectProbe(bed.broker.url);
    await lateDisplay.subscribe(topics.display);
    expect((await lateDisplay.next(topics.display)).json<DisplayPayload>().userCode).toBe(display.userCode);
    await lateDisplay.close();

    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });

    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event).toStrictEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      type: "authenticated",
      deviceId: config.deviceId,
      at: expect.stringMatching(ISO),
      method: "device_code",
      verified: true,
      claims: expect.objectContaining({
        sub: "alice",
        name: "Alice",
        iss: bed.idp.issuer,
        aud: bed.idp.clientId,
      }),
      account: expect.objectContaining({ name: "Alice", username: "alice@example.com" }),
    });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const signedIn = (
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in")
    ).json<StatePayload>();
    expect(signedIn.account?.name).toBe("Alice");
    expect((await inProcess).claims["sub"]).toBe("alice");

    // The display is cleared for good: a display connecting now sees no prompt.
    const afterwards = await connectProbe(bed.broker.url);
    await afterwards.subscribe(topics.display);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(afterwards.all(topics.display)).toStrictEqual([]);
    await afterwards.close();

    // Nothing secret in the logs or on the wire.
    const everything =
      log.text() + JSON.stringify(probe.all(topics.event("authenticated")).map((m) => m.payload.toString()));
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // a JWT (ID or access token)
    expect(everything).not.toMatch(/"(access|refresh|id)_?[tT]oken"\s*:\s*"[^[]/);
  });

  it("reports a declined sign-in and offers a new code", async () => {
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: captureLogger().logger });
    await agent.start();
    const first = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await declineSignIn(first.verificationUri, first.userCode, { ca: bed.idp.caPem });

    const failed = (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>();
    expect(failed.reason).toBe("declined");
    expect(failed.retryAt).toMatch(ISO);
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const second = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(second.userCode).not.toBe(first.userCode);
  });

  it("replaces an expired code with a new one", async () => {
    const shortLived = await startTestBed({ deviceCodeTtlSeconds: 2, pollIntervalSeconds: 1 });
    const local = await connectProbe(shortLived.broker.url);
    try {
      await local.subscribe("edge-signin/#");
      const config = shortLived.config();
      const topics = deviceTopics(config.topicPrefix, config.deviceId);
      agent = new Agent({ config, logger: captureLogger().logger });
      await agent.start();
      const first = (await local.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      const expired = (await local.next(topics.event("code_expired"))).json<EventPayload<"code_expired">>();
      expect(expired.userCode).toBe(first.userCode);
      expect((await local.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
      const second = (await local.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      expect(second.userCode).not.toBe(first.userCode);
    } finally {
      await agent?.stop();
      agent = undefined;
      await local.close();
      await shortLived.close();
    }
  });

  it("goes to state error and keeps retrying while the identity provider is unreachable", async () => {
    const config = bed.config({ EDGE_SIGNIN_AUTHORITY: "https://127.0.0.1:9/" });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: captureLogger().logger });
    await agent.start();
    const failures = [
      (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>(),
      (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>(),
    ];
    expect(failures.map((f) => f.reason)).toStrictEqual(["network", "network"]);
    const error = (
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "error")
    ).json<StatePayload>();
    expect(error).toMatchObject({ reason: "network", retryAt: expect.stringMatching(ISO) });
  });

  it("clears the display and announces offline when stopped while waiting", async () => {
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const stopping = new Agent({ config, logger: captureLogger().logger });
    await stopping.start();
    await probe.next(topics.display, (m) => m.payload.length > 0);
    const began = Date.now();
    await stopping.stop();
    expect(Date.now() - began).toBeLessThan(5_000);
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    expect((await probe.next(topics.availability, (m) => m.payload.toString() === "offline")).retain).toBe(
      false,
    );
  });
});
