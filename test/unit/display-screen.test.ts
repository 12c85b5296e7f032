import { describe, expect, it } from "vitest";
import type { DeviceSnapshot } from "../../src/display/device-view.js";
import { screenFor, type ScreenContext } from "../../src/display/screen.js";

const NOW = Date.parse("2026-11-30T12:00:00.000Z");
const at = (offsetMs: number) => new Date(NOW + offsetMs).toISOString();
const CONTEXT: ScreenContext = {
  locale: "en",
  product: "Kiosk",
  shortUrl: undefined,
  watchingSince: NOW - 5_000,
  neverHeardAfterMs: 30_000,
};
const BASE: DeviceSnapshot = {
  deviceId: "tv",
  brokerConnected: true,
  availability: "online",
  state: null,
  prompt: null,
  pause: null,
  signedOut: null,
  serverTime: at(0),
};
const PROMPT = {
  deviceId: "tv",
  userCode: "GTK8ZJ2LA",
  verificationUri: "https://login.example.com/device",
  message: "",
  issuedAt: at(-60_000),
  expiresAt: at(600_000),
  qrUrl: "https://login.example.com/device",
  qrSvg: "<svg/>",
};
const screen = (snapshot: Partial<DeviceSnapshot>, context: Partial<ScreenContext> = {}) =>
  screenFor({ ...BASE, ...snapshot }, { ...CONTEXT, ...context }, NOW);

describe("the screen a snapshot makes", () => {
  it("shows the code, counting down to its expiry, then 'expired'", () => {
    const code = screen({ prompt: PROMPT });
    expect(code).toMatchObject({
      kind: "code",
      headline: "Sign in to \u2068Kiosk\u2069",
      countdownLabel: "Code expires in",
      until: PROMPT.expiresAt,
      then: { kind: "expired", headline: "The code expired", until: null },
      code: { groups: ["GTK", "8ZJ", "2LA"], urlParts: ["login", ".example", ".com/", "device"] },
      banner: "",
      announce: "Sign-in code GTK 8ZJ 2LA. Open login.example.com/device. The code expires in 10 minutes.",
    });
    expect(screen({ prompt: PROMPT }, { shortUrl: "example.com/tv" }).code?.urlParts).toStrictEqual([
      "example",
      ".com/",
      "tv",
    ]);
  });

  it("keeps a valid code when the broker is gone, under a banner; otherwise says the broker is unreachable", () => {
    expect(screen({ prompt: PROMPT, brokerConnected: false })).toMatchObject({
      kind: "code",
      banner: "This screen is reconnecting. The code still works.",
    });
    expect(screen({ brokerConnected: false })).toMatchObject({
      kind: "broker-unreachable",
      headline: "This screen is not connected",
    });
  });

  it("counts down to the next code after an expiry or a declined sign-in, then waits for it", () => {
    expect(screen({ pause: { reason: "expired", until: at(250_000) } })).toMatchObject({
      kind: "expired",
      countdownLabel: "New code in",
      until: at(250_000),
      then: { kind: "waiting" },
    });
    expect(screen({ pause: { reason: "declined", until: at(5_000) } })).toMatchObject({
      kind: "error",
      headline: "Sign-in was declined",
      countdownLabel: "New code in",
    });
    // A pause that is over is no reason to count down.
    expect(screen({ pause: { reason: "expired", until: at(-1) } }).kind).toBe("waiting");
  });

  it("says the problem in plain words, never the raw message, with the retry countdown", () => {
    const error = screen({
      state: {
        state: "error",
        since: at(0),
        deviceId: "tv",
        reason: "network",
        message: "ECONNREFUSED",
        retryAt: at(90_000),
      },
    });
    expect(error).toMatchObject({
      kind: "error",
      headline: "Can’t reach the sign-in service",
      detail: "",
      countdownLabel: "Trying again in",
      then: { kind: "retrying", headline: "Trying again…" },
    });
    expect(JSON.stringify(error)).not.toContain("ECONNREFUSED");
    expect(
      screen({ state: { state: "error", since: at(0), deviceId: "tv", reason: "server" } }),
    ).toMatchObject({ kind: "error", headline: "The sign-in service is having trouble", until: null });
  });

  it("names who signed in while the account is there, then turns neutral", () => {
    expect(
      screen({
        state: { state: "signed_in", since: at(0), deviceId: "tv", account: { name: "Dave", username: "" } },
      }),
    ).toMatchObject({ kind: "signed-in", headline: "Signed in as \u2068Dave\u2069", detail: "" });
    expect(screen({ state: { state: "signed_in", since: at(0), deviceId: "tv" } })).toMatchObject({
      kind: "signed-in-neutral",
      headline: "Signed in",
    });
  });

  it("waits for a device it has not heard from, then says what to check", () => {
    const early = screen({ availability: "unknown" });
    expect(early).toMatchObject({
      kind: "waiting",
      countdownLabel: "",
      until: at(25_000),
      then: { kind: "never-heard", headline: "No word from this device yet" },
    });
    expect(screen({ availability: "unknown" }, { watchingSince: NOW - 60_000 })).toMatchObject({
      kind: "never-heard",
      detail: expect.stringContaining("\u2068tv\u2069"),
    });
  });

  it("says the device is offline, whatever else it last said", () => {
    expect(screen({ availability: "offline", prompt: PROMPT }).kind).toBe("offline");
  });

  it("says 'Sign in' without a product name, never the device id", () => {
    expect(screen({ prompt: PROMPT }, { product: undefined }).headline).toBe("Sign in");
  });

  it("links the https address, and says whether the QR code carries the code", () => {
    // Entra: no complete URI, the QR code opens the page only.
    expect(screen({ prompt: PROMPT }).code).toMatchObject({
      href: "https://login.example.com/device",
      qrCaption: "or scan the QR code to open the page",
    });
    const complete = "https://login.example.com/device?user_code=GTK8ZJ2LA";
    expect(
      screen({ prompt: { ...PROMPT, verificationUriComplete: complete, qrUrl: complete } }).code,
    ).toMatchObject({ href: complete, qrCaption: "or scan the QR code" });
    // No link to what is not https.
    expect(
      screen({ prompt: { ...PROMPT, verificationUri: "javascript:alert(1)", qrUrl: null, qrSvg: null } }).code
        ?.href,
    ).toBe("");
  });

  it("says sign-in is paused after a cancel, and how to start again", () => {
    expect(
      screen({ state: { state: "signed_out", since: at(0), deviceId: "tv", idle: true } }),
    ).toMatchObject({
      kind: "idle",
      headline: "Sign-in is paused",
      detail: "To get a sign-in code, start signing in on the device again.",
    });
    expect(screen({ state: { state: "signed_out", since: at(0), deviceId: "tv" } }).kind).toBe("waiting");
  });

  it("says 'Signed out' for a moment after a sign-out, then shows the next code", () => {
    const moment = screen({ prompt: PROMPT, signedOut: { until: at(4_000) } });
    expect(moment).toMatchObject({
      kind: "signed-out",
      headline: "Signed out",
      countdownLabel: "",
      until: at(4_000),
      then: { kind: "code" },
    });
    expect(screen({ prompt: PROMPT, signedOut: { until: at(-1) } }).kind).toBe("code");
  });

  it("speaks the page's language", () => {
    expect(screen({ prompt: PROMPT }, { locale: "de" }).countdownLabel).toBe("Der Code läuft ab in");
    expect(screen({ prompt: PROMPT }, { locale: "ar" }).headline).toBe("سجّل الدخول إلى \u2068Kiosk\u2069");
  });
});
