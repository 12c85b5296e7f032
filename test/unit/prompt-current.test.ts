import { EventEmitter } from "eventemitter3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DeviceView, isPromptCurrent } from "../../src/display/device-view.js";
import type { DeviceWatcher, DeviceWatcherEvents } from "../../src/mqtt/device-watcher.js";
import type { DisplayPayload } from "../../src/mqtt/topics.js";

const prompt = (expiresAt: string): DisplayPayload => ({
  deviceId: "tv-1",
  userCode: "ABCD-EFGH",
  verificationUri: "https://login.example.com/device",
  message: "Enter ABCD-EFGH",
  issuedAt: "2026-11-30T10:00:00.000Z",
  expiresAt,
});

describe("whether a prompt is still current (MQTT 3.1.1 keeps retained prompts past their code)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is current only before expiresAt, and never with an expiresAt that is no date", () => {
    const now = Date.parse("2026-11-30T10:05:00.000Z");
    expect(isPromptCurrent(prompt("2026-11-30T10:15:00.000Z"), now)).toBe(true);
    expect(isPromptCurrent(prompt("2026-11-30T10:05:00.000Z"), now)).toBe(false);
    expect(isPromptCurrent(prompt("2026-11-30T10:00:00.000Z"), now)).toBe(false);
    expect(isPromptCurrent(prompt("soon"), now)).toBe(false);
  });

  it("a display view never shows an expired prompt, and drops a shown one when it expires", () => {
    vi.useFakeTimers({ now: Date.parse("2026-11-30T10:05:00.000Z") });
    const watcher = new EventEmitter<DeviceWatcherEvents>();
    const view = new DeviceView("tv-1", watcher as unknown as DeviceWatcher);
    view.start();
    watcher.emit("display", prompt("2026-11-30T10:04:59.000Z"));
    expect(view.snapshot().prompt).toBeNull();
    watcher.emit("display", prompt("2026-11-30T10:06:00.000Z"));
    expect(view.snapshot().prompt?.userCode).toBe("ABCD-EFGH");
    vi.advanceTimersByTime(60_000);
    expect(view.snapshot().prompt).toBeNull();
    view.stop();
  });
});
