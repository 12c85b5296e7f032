import { describe, expect, it } from "vitest";
import type { ProviderAnswer } from "../../src/auth/network-client.js";
import {
  DEFAULT_INTERVAL_SECONDS,
  LIMITS,
  OAuthStepError,
  processDeviceAuthorization,
  processDeviceTokenAnswer,
} from "../../src/auth/oauth-steps.js";

// The protocol steps' process halves, on answers as the network client reads them. The loop against a real
// provider is in test/integration/rfc8628.test.ts and test/integration/network-client.test.ts.
const answer = (status: number, json: unknown): ProviderAnswer => ({ status, headers: {}, json });

const deviceAuthorization = {
  device_code: "DC1",
  user_code: "WDJB-MJHT",
  verification_uri: "https://sso.example/device",
  verification_uri_complete: "https://sso.example/device?user_code=WDJB-MJHT",
  expires_in: 600,
};

function warnings() {
  const seen: Array<{ fields: Record<string, unknown>; message: string }> = [];
  return { seen, warn: (fields: Record<string, unknown>, message: string) => seen.push({ fields, message }) };
}

describe("RFC 8628 device authorization response", () => {
  it("reads every field, with the RFC's default interval of 5 s when the provider sends none", () => {
    const { seen, warn } = warnings();
    expect(processDeviceAuthorization(answer(200, deviceAuthorization), warn, 42)).toStrictEqual({
      deviceCode: "DC1",
      userCode: "WDJB-MJHT",
      verificationUri: "https://sso.example/device",
      verificationUriComplete: "https://sso.example/device?user_code=WDJB-MJHT",
      expiresInSeconds: 600,
      intervalSeconds: DEFAULT_INTERVAL_SECONDS,
      receivedAt: 42,
    });
    expect(
      processDeviceAuthorization(answer(200, { ...deviceAuthorization, interval: 8 }), warn).intervalSeconds,
    ).toBe(8);
    expect(seen).toStrictEqual([]);
  });

  it("takes Google's verification_url and Entra's message", () => {
    const { verification_uri: uri, ...rest } = deviceAuthorization;
    const read = processDeviceAuthorization(
      answer(200, { ...rest, verification_url: uri, message: "Go to the page" }),
      () => undefined,
    );
    expect(read).toMatchObject({ verificationUri: uri, message: "Go to the page" });
  });

  it("turns an error answer into a coded error carrying the server's error", () => {
    const failure = () =>
      processDeviceAuthorization(
        answer(400, { error: "unauthorized_client", error_description: "device grant not enabled" }),
        () => undefined,
      );
    expect(failure).toThrow(OAuthStepError);
    expect(failure).toThrow("unauthorized_client: device grant not enabled");
  });

  it.each([
    ["a gateway's JSON", 403, { message: "Forbidden" }],
    ["an empty object", 200, {}],
    ["HTML", 503, undefined],
  ])("calls %s no OAuth answer: a server problem", (_name, status, json) => {
    try {
      processDeviceAuthorization(answer(status, json), () => undefined);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "not_oauth", reason: "server", transient: true });
    }
  });

  it("clamps an interval out of range and an expires_in over an hour, with one warning each", () => {
    const { seen, warn } = warnings();
    const read = processDeviceAuthorization(
      answer(200, { ...deviceAuthorization, interval: 3_000_000, expires_in: 2 ** 32 }),
      warn,
    );
    expect(read).toMatchObject({
      intervalSeconds: LIMITS.maxIntervalSeconds,
      expiresInSeconds: LIMITS.maxExpiresInSeconds,
    });
    expect(seen.map((w) => w.fields["field"])).toStrictEqual(["expires_in", "interval"]);
    expect(seen[1]?.message).toMatch(/interval of 3000000 s is outside 1\.\.60 s: polling every 60 s/);
    const fast = warnings();
    expect(
      processDeviceAuthorization(answer(200, { ...deviceAuthorization, interval: 0 }), fast.warn)
        .intervalSeconds,
    ).toBe(1);
    expect(fast.seen).toHaveLength(1);
  });

  it("refuses a user_code or verification_uri too long to show, and drops a huge message with a warning", () => {
    const long = "A".repeat(4_000_000);
    expect(() =>
      processDeviceAuthorization(answer(200, { ...deviceAuthorization, user_code: long }), () => undefined),
    ).toThrow(/user_code has 4000000 characters, over the 64/);
    expect(() =>
      processDeviceAuthorization(
        answer(200, { ...deviceAuthorization, verification_uri: `https://x/${long}` }),
        () => undefined,
      ),
    ).toThrow(/verification_uri has/);
    expect(() =>
      processDeviceAuthorization(
        answer(200, { ...deviceAuthorization, verification_uri: "http://sso.example/device" }),
        () => undefined,
      ),
    ).toThrow(/not an https URL/);
    const { seen, warn } = warnings();
    const read = processDeviceAuthorization(answer(200, { ...deviceAuthorization, message: long }), warn);
    expect(read.message).toBeUndefined();
    expect(seen).toHaveLength(1);
  });

  it("refuses an expires_in that is no positive number", () => {
    for (const expires_in of [0, -1, "600", undefined, Number.NaN])
      expect(() =>
        processDeviceAuthorization(answer(200, { ...deviceAuthorization, expires_in }), () => undefined),
      ).toThrow(/expires_in/);
  });
});

describe("RFC 8628 token answers", () => {
  it("reads pending, slow_down and tokens", () => {
    expect(processDeviceTokenAnswer(answer(400, { error: "authorization_pending" }))).toStrictEqual({
      kind: "pending",
    });
    expect(processDeviceTokenAnswer(answer(400, { error: "slow_down" }))).toStrictEqual({
      kind: "slow_down",
    });
    expect(
      processDeviceTokenAnswer(
        answer(200, { access_token: "a", token_type: "Bearer", id_token: "i", refresh_token: "r" }),
      ),
    ).toStrictEqual({ kind: "tokens", tokens: { accessToken: "a", idToken: "i", refreshToken: "r" } });
  });

  it.each([
    ["access_denied", "declined"],
    ["authorization_declined", "declined"],
    ["expired_token", "expired"],
    ["code_expired", "expired"],
    ["invalid_grant", "server"],
    ["bad_verification_code", "server"],
  ])("ends on %s (%s)", (error, reason) => {
    expect(() => processDeviceTokenAnswer(answer(400, { error }))).toThrow(
      expect.objectContaining({ reason, transient: false }),
    );
  });

  it.each([200, 401, 403, 429, 503, 504])(
    "calls a body without error at HTTP %i a passing server problem, never tokens",
    (status) => {
      for (const json of [{ message: "Forbidden" }, {}, undefined, { access_token: "a" }])
        expect(() => processDeviceTokenAnswer(answer(status, json))).toThrow(
          expect.objectContaining({ code: "not_oauth", reason: "server", transient: true }),
        );
    },
  );

  it("calls temporarily_unavailable and any 5xx error passing", () => {
    expect(() => processDeviceTokenAnswer(answer(400, { error: "temporarily_unavailable" }))).toThrow(
      expect.objectContaining({ reason: "server", transient: true }),
    );
    expect(() => processDeviceTokenAnswer(answer(502, { error: "bad_gateway" }))).toThrow(
      expect.objectContaining({ reason: "server", transient: true }),
    );
  });
});
