import { PassThrough } from "node:stream";
import { EventEmitter } from "eventemitter3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DeviceView, isPromptCurrent, isPromptSuperseded } from "../../src/display/device-view.js";
import { TerminalDisplay } from "../../src/display/terminal.js";
import type { DeviceWatcher, DeviceWatcherEvents } from "../../src/mqtt/device-watcher.js";
import type { DisplayPayload, StatePayload } from "../../src/mqtt/topics.js";

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

describe("a code the device's state has moved past is not shown (a retained code whose deletion a broker lost)", () => {
  const state = (name: StatePayload["state"], since: string): StatePayload => ({
    state: name,
    since,
    deviceId: "tv-1",
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is superseded by signed_in or signed_out at or after it was issued, by nothing else", () => {
    const code = prompt("2026-11-30T10:15:00.000Z"); // issued 10:00:00
    expect(isPromptSuperseded(code, state("signed_in", "2026-11-30T10:01:00.000Z"))).toBe(true);
    expect(isPromptSuperseded(code, state("signed_out", "2026-11-30T10:00:00.000Z"))).toBe(true);
    // An earlier session's state, a waiting or failing device, no state, or a time that is no date: shown.
    expect(isPromptSuperseded(code, state("signed_in", "2026-11-30T09:59:59.999Z"))).toBe(false);
    expect(isPromptSuperseded(code, state("awaiting_user", "2026-11-30T10:01:00.000Z"))).toBe(false);
    expect(isPromptSuperseded(code, state("error", "2026-11-30T10:01:00.000Z"))).toBe(false);
    expect(isPromptSuperseded(code, null)).toBe(false);
    expect(isPromptSuperseded(code, state("signed_in", "later"))).toBe(false);
    expect(isPromptSuperseded({ issuedAt: "then" }, state("signed_in", "2026-11-30T10:01:00.000Z"))).toBe(
      false,
    );
  });

  it("the web display's view drops the code when the state says signed in, in either order of arrival", () => {
    vi.useFakeTimers({ now: Date.parse("2026-11-30T10:05:00.000Z") });
    const signedIn = state("signed_in", "2026-11-30T10:04:00.000Z");
    for (const order of [
      ["display", "state"],
      ["state", "display"],
    ] as const) {
      const watcher = new EventEmitter<DeviceWatcherEvents>();
      const view = new DeviceView("tv-1", watcher as unknown as DeviceWatcher);
      view.start();
      for (const what of order)
        if (what === "display") watcher.emit("display", prompt("2026-11-30T10:15:00.000Z"));
        else watcher.emit("state", signedIn);
      expect(view.snapshot().prompt, order.join(" then ")).toBeNull();
      expect(view.snapshot().state?.state).toBe("signed_in");
      // A new code, issued after that sign-in, is shown.
      watcher.emit("display", {
        ...prompt("2026-11-30T10:20:00.000Z"),
        issuedAt: "2026-11-30T10:05:00.000Z",
      });
      expect(view.snapshot().prompt?.userCode).toBe("ABCD-EFGH");
      view.stop();
    }
  });

  it("the terminal display clears the code when the state says signed in, and never prints one issued before", () => {
    vi.useFakeTimers({ now: Date.parse("2026-11-30T10:05:00.000Z") });
    const watcher = new EventEmitter<DeviceWatcherEvents>();
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    const terminal = new TerminalDisplay(watcher as unknown as DeviceWatcher, out);
    terminal.start();
    watcher.emit("display", prompt("2026-11-30T10:15:00.000Z"));
    expect(text).toContain("ABCD-EFGH");
    watcher.emit("state", state("signed_in", "2026-11-30T10:04:00.000Z"));
    expect(text).toContain("display cleared");
    text = "";
    // The same retained code again (a late re-delivery): not printed.
    watcher.emit("display", prompt("2026-11-30T10:15:00.000Z"));
    expect(text).not.toContain("ABCD-EFGH");
    terminal.stop();
  });
});
