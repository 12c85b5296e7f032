import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../src/agent.js";
import { approveByCompleteUri, approveSignIn, declineSignIn } from "../../src/dev/person.js";
import type { Authenticated, SignInPrompt } from "../../src/events.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { captureLogger, startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { startSlowDownFront } from "../helpers/slow-down-front.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** RFC 8628's default interval: oidc-provider as it ships sends none. */
const INTERVAL_MS = 5_000;
const SLOW_DOWN_MS = 5_000;
/** Timers may fire a millisecond early after rounding; never more. */
const CLOCK_SLACK_MS = 50;

// oidc-provider AS IT SHIPS: default routes (/token, /device/auth), RFC grant type only, no interval, no
// message, nothing rewritten in front of it. The agent's RFC 8628 mode does the translating.
describe("agent against an RFC 8628 provider (oidc-provider as it ships)", () => {
  let bed: TestBed;
  let probe: MqttProbe;
  let agent: Agent | undefined;
  let runs = 0;
  /** Each test its own state directory: a session cached by one test must not sign the next one in. */
  const configFor = (overrides: Record<string, string> = {}) =>
    bed.config({ EDGE_SIGNIN_STATE_DIR: join(bed.stateDir, `state-${++runs}`), ...overrides });

  beforeAll(async () => {
    bed = await startTestBed({ dialect: "rfc8628" });
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

  it("shows the code with its complete URI and publishes who signed in", async () => {
    const config = configFor();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: captureLogger().logger });
    const prompted = new Promise<SignInPrompt>((resolve) => agent?.once("prompt", resolve));
    const inProcess = new Promise<Authenticated>((resolve) => agent?.once("authenticated", resolve));
    await agent.start();

    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(display).toStrictEqual({
      deviceId: config.deviceId,
      userCode: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/),
      verificationUri: expect.stringMatching(/^https:\/\/(localhost|127\.0\.0\.1):\d+\/device$/),
      verificationUriComplete: `${display.verificationUri}?user_code=${display.userCode}`,
      // The provider sends no message; the agent writes one.
      message: `To sign in, use a web browser to open the page ${display.verificationUri} and enter the code ${display.userCode}.`,
      issuedAt: expect.stringMatching(ISO),
      expiresAt: expect.stringMatching(ISO),
    });
    expect(await prompted).toMatchObject({
      userCode: display.userCode,
      verificationUriComplete: display.verificationUriComplete,
      intervalSeconds: 5,
    });

    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });

    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event).toMatchObject({
      type: "authenticated",
      deviceId: config.deviceId,
      method: "device_code",
      claims: { sub: "alice", name: "Alice", iss: bed.idp.issuer, aud: bed.idp.clientId },
      account: { name: "Alice", username: "alice@example.com" },
    });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const signedIn = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    expect(signedIn.json<StatePayload>().account?.name).toBe("Alice");
    expect((await inProcess).claims["sub"]).toBe("alice");
  });

  it("signs in from the complete URI alone, as a QR code scan does", async () => {
    const config = configFor();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: captureLogger().logger });
    await agent.start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(display.verificationUriComplete).toBeDefined();

    await approveByCompleteUri(display.verificationUriComplete ?? "", { ca: bed.idp.caPem, login: "bob" });

    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event.claims).toMatchObject({ sub: "bob", name: "Bob" });
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
  });

  it("reports access_denied as declined and offers a new code", async () => {
    const config = configFor();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    agent = new Agent({ config, logger: captureLogger().logger });
    await agent.start();
    const first = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await declineSignIn(first.verificationUri, first.userCode, { ca: bed.idp.caPem });

    const failed = (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>();
    expect(failed).toMatchObject({ reason: "declined", retryAt: expect.stringMatching(ISO) });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const second = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(second.userCode).not.toBe(first.userCode);
  });

  it("replaces an expired code with a new one", async () => {
    const shortLived = await startTestBed({ dialect: "rfc8628", deviceCodeTtlSeconds: 2 });
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

  it("on slow_down polls 5 s less often from then on, keeping the code on screen", async () => {
    // oidc-provider defines slow_down but never sends it: a thin front answers it to the first poll.
    const front = await startSlowDownFront(bed.idp, { slowDownPolls: [0] });
    try {
      const config = configFor({
        EDGE_SIGNIN_AUTHORITY: front.authority,
        EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
      });
      const topics = deviceTopics(config.topicPrefix, config.deviceId);
      const log = captureLogger();
      agent = new Agent({ config, logger: log.logger });
      await agent.start();
      const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

      const slowedDown = await front.poll(0);
      expect(slowedDown.answer).toBe("slow_down");
      const second = await front.poll(1);
      expect(second.at - slowedDown.at).toBeGreaterThanOrEqual(INTERVAL_MS + SLOW_DOWN_MS - CLOCK_SLACK_MS);
      await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "carol" });
      // The extra 5 s hold for every later poll of the same code, not only the next one.
      const third = await front.poll(2);
      expect(third.at - second.at).toBeGreaterThanOrEqual(INTERVAL_MS + SLOW_DOWN_MS - CLOCK_SLACK_MS);
      expect(new Set(front.polls().map((p) => p.deviceCode)).size).toBe(1);

      const event = (await probe.next(topics.event("authenticated"), undefined, 30_000)).json<
        EventPayload<"authenticated">
      >();
      expect(event.claims).toMatchObject({ sub: "carol" });
      // One code on screen all along: no failure, no new code, until it was used.
      const shown = probe
        .all(topics.display)
        .filter((m) => m.payload.length > 0)
        .map((m) => m.json<DisplayPayload>().userCode);
      expect(shown.filter((code) => code !== display.userCode)).toStrictEqual([]);
      expect(probe.all(topics.event("sign_in_failed"))).toStrictEqual([]);
      expect(log.lines()).toContainEqual(
        expect.objectContaining({ msg: expect.stringContaining("poll more slowly"), extraSeconds: 5 }),
      );
    } finally {
      await agent?.stop();
      agent = undefined;
      await front.close();
    }
  });
});
