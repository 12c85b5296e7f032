import { describe, expect, it } from "vitest";
import { ProviderClock } from "../../src/auth/provider-clock.js";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "../../src/auth/retry-after.js";
import { countdownFromReceipt } from "../../src/display/device-view.js";

const NOW = Date.parse("2026-11-30T12:00:00.000Z");

describe("ProviderClock", () => {
  it("judges by the provider's clock when the device's is off beyond the tolerance, and says by how much", () => {
    let local = NOW + 2 * 3600_000; // the device is 2 h ahead
    const clock = new ProviderClock(60_000, () => local);
    expect(clock.skewSeconds).toBeUndefined();
    clock.observe(new Date(NOW).toUTCString());
    // `Date` has whole seconds: the provider's time lies within the second it names.
    expect(Math.abs((clock.skewSeconds ?? 0) + 7200)).toBeLessThanOrEqual(1);
    expect(Math.abs(clock.now().getTime() - (NOW + 500))).toBeLessThan(1_000);
    // NTP fixed the device's clock: the clocks agree again.
    local = NOW;
    clock.observe(new Date(NOW).toUTCString());
    expect(clock.skewSeconds).toBeUndefined();
    expect(clock.now().getTime()).toBe(NOW);
  });

  it("ignores an answer without a usable Date", () => {
    const clock = new ProviderClock(2_000, () => NOW);
    clock.observe(undefined);
    clock.observe("not a date");
    expect(clock.skewSeconds).toBeUndefined();
  });
});

describe("parseRetryAfter", () => {
  it("reads delay-seconds and HTTP-dates (against the answer's own Date), bounded", () => {
    expect(parseRetryAfter("120", undefined, NOW)).toBe(120_000);
    expect(parseRetryAfter(new Date(NOW + 30_000).toUTCString(), undefined, NOW)).toBe(30_000);
    // The device's clock is an hour behind: the answer's Date keeps the pause as the provider meant it.
    const sent = new Date(NOW + 3600_000);
    expect(parseRetryAfter(new Date(sent.getTime() + 30_000).toUTCString(), sent.toUTCString(), NOW)).toBe(
      30_000,
    );
    expect(parseRetryAfter("999999", undefined, NOW)).toBe(MAX_RETRY_AFTER_MS);
    for (const bad of [undefined, "", "soon", "-5", "0", new Date(NOW - 1000).toUTCString()])
      expect(parseRetryAfter(bad, undefined, NOW)).toBe(0);
  });
});

describe("countdownFromReceipt", () => {
  const prompt = {
    deviceId: "tv",
    userCode: "ABCD-EFGH",
    verificationUri: "https://example.com/device",
    message: "",
    issuedAt: "2026-11-30T09:50:00.000Z",
    expiresAt: "2026-11-30T10:00:00.000Z",
    expiresIn: 600,
  };

  it("moves expiresAt onto this display's clock from the seconds received", () => {
    expect(countdownFromReceipt(prompt, 420, NOW)).toStrictEqual({
      ...prompt,
      expiresAt: "2026-11-30T12:07:00.000Z",
    });
  });

  it("keeps the agent's expiresAt when nothing says how much is left", () => {
    expect(countdownFromReceipt(prompt, undefined, NOW)).toBe(prompt);
  });
});
