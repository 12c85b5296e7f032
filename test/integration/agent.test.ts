import { describe, expect, it } from "vitest";
import { approveSignIn, declineSignIn } from "../../src/dev/person.js";
import type { Authenticated, SignInPrompt } from "../../src/events.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";
import { connectProbe } from "../helpers/mqtt-probe.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The two dialects of the device flow the agent speaks; the journey is the same in both. */
const DIALECTS = [
  {
    // A local provider emulating Entra's dialect, driven through MSAL's own device flow as real Entra is.
    dialect: "entra",
    provider: "a provider emulating Entra",
    /** The provider's `interval` (the bed's pollIntervalSeconds). */
    intervalSeconds: 1,
    /** What the provider's answer puts on the display: Entra writes the message and sends no complete URI. */
    shows: (display: DisplayPayload) => ({ message: expect.stringContaining(display.userCode) }),
  },
  {
    // oidc-provider AS IT SHIPS: default routes (/token, /device/auth), RFC grant type only, no interval, no
    // message, nothing rewritten in front of it. The agent's RFC 8628 mode does the translating.
    dialect: "rfc8628",
    provider: "an RFC 8628 provider (oidc-provider as it ships)",
    /** RFC 8628's default: oidc-provider as it ships sends no interval. */
    intervalSeconds: 5,
    /** The complete URI is passed on (for the QR code); the provider sends no message, so the agent writes one. */
    shows: (display: DisplayPayload) => ({
      verificationUriComplete: `${display.verificationUri}?user_code=${display.userCode}`,
      message: `To sign in, use a web browser to open the page ${display.verificationUri} and enter the code ${display.userCode}.`,
    }),
  },
] as const;

describe.each(DIALECTS)("agent against Mosquitto and $provider", ({ dialect, intervalSeconds, shows }) => {
  const { bed, probe, newAgent } = useTestBed({ idp: { dialect } });

  it("shows the code on the display topic and publishes who signed in", async () => {
    const log = captureLogger();
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const agent = newAgent(config, log.logger);
    const prompted = new Promise<SignInPrompt>((resolve) => agent.once("prompt", resolve));
    const inProcess = new Promise<Authenticated>((resolve) => agent.once("authenticated", resolve));
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
      ...shows(display),
      issuedAt: expect.stringMatching(ISO),
      expiresAt: expect.stringMatching(ISO),
      // The provider's lifetime for the code (the dev provider's default), beside the device-clock expiresAt.
      expiresIn: 600,
    });
    expect(await prompted).toMatchObject({ userCode: display.userCode, ...shows(display), intervalSeconds });
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
      // What the provider granted: what the device's apps may ask tokens for.
      scopes: expect.arrayContaining(["openid", "profile"]),
    });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const signedIn = (
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in")
    ).json<StatePayload>();
    // Displays read the retained state: no personal data in it unless EDGE_SIGNIN_STATE_ACCOUNT says so.
    expect(signedIn.account).toBe(undefined);
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

  // The local provider answers a refusal with access_denied in both dialects (Entra's own would be
  // authorization_declined); either is reported as declined.
  it("reports a declined sign-in and offers a new code", async () => {
    const config = bed.config();
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    await newAgent(config).start();
    const first = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await declineSignIn(first.verificationUri, first.userCode, { ca: bed.idp.caPem });

    const failed = (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>();
    expect(failed).toMatchObject({ reason: "declined", retryAt: expect.stringMatching(ISO) });
    expect((await probe.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
    const second = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(second.userCode).not.toBe(first.userCode);
  });

  describe("with codes that live 2 s", () => {
    const shortLived = useTestBed({ idp: { dialect, deviceCodeTtlSeconds: 2 } });

    it("replaces an expired code with a new one", async () => {
      const config = shortLived.bed.config();
      const topics = deviceTopics(config.topicPrefix, config.deviceId);
      await shortLived.newAgent(config).start();
      const local = shortLived.probe;
      const first = (await local.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      const expired = (await local.next(topics.event("code_expired"))).json<EventPayload<"code_expired">>();
      expect(expired.userCode).toBe(first.userCode);
      expect((await local.next(topics.display, (m) => m.payload.length === 0)).payload.length).toBe(0);
      const second = (await local.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
      expect(second.userCode).not.toBe(first.userCode);
    });
  });
});

describe("agent against Mosquitto, whatever the provider", () => {
  const { bed, probe, newAgent } = useTestBed();

  it("goes to state error and keeps retrying while the identity provider is unreachable", async () => {
    const config = bed.config({ EDGE_SIGNIN_AUTHORITY: "https://127.0.0.1:9/" });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    await newAgent(config).start();
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
    const stopping = newAgent(config);
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

describe("the agent's own message for a provider that sends none", () => {
  const { bed, probe, newAgent } = useTestBed({ idp: { dialect: "rfc8628" } });

  it.each([
    ["de", "Öffnen Sie zum Anmelden die Seite {url} in einem Webbrowser und geben Sie den Code {code} ein."],
    ["ja", "サインインするには、Web ブラウザーで {url} を開き、コード {code} を入力してください。"],
    ["auto", "To sign in, use a web browser to open the page {url} and enter the code {code}."],
  ])("follows DISPLAY_LANGUAGE=%s", async (language, template) => {
    const config = bed.config({
      EDGE_SIGNIN_DISPLAY_LANGUAGE: language,
      EDGE_SIGNIN_DEVICE_ID: `lang-${language}-${process.pid}`,
    });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    await newAgent(config).start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(display.message).toBe(
      template.replace("{url}", display.verificationUri).replace("{code}", display.userCode),
    );
  });
});
