import { EventEmitter } from "eventemitter3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BROKER_GOODBYE_MS, DeviceView } from "../../src/display/device-view.js";
import type { DeviceWatcher, DeviceWatcherEvents } from "../../src/mqtt/device-watcher.js";

/** A view on a watcher that is only an emitter: the broker's side is played by emitting what it would deliver. */
function connectedView(): { view: DeviceView; watcher: EventEmitter<DeviceWatcherEvents> } {
  const watcher = new EventEmitter<DeviceWatcherEvents>();
  const view = new DeviceView("tv-1", watcher as unknown as DeviceWatcher);
  view.start();
  watcher.emit("connection", true);
  watcher.emit("availability", "online");
  return { view, watcher };
}

describe("a device's offline that is the broker's goodbye (a broker shutting down sends every client's will)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is not shown when the display's own connection drops right after it: the broker went away, not the device", () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-08T10:00:00.000Z") });
    const { view, watcher } = connectedView();
    watcher.emit("availability", "offline");
    vi.advanceTimersByTime(50);
    watcher.emit("connection", false);
    expect(view.snapshot()).toMatchObject({ brokerConnected: false, availability: "online" });
    view.stop();
  });

  it("is shown when the device went offline and the display's connection stays up, or drops only later", () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-08T10:00:00.000Z") });
    const { view, watcher } = connectedView();
    watcher.emit("availability", "offline");
    expect(view.snapshot()).toMatchObject({ brokerConnected: true, availability: "offline" });
    vi.advanceTimersByTime(BROKER_GOODBYE_MS + 1);
    watcher.emit("connection", false);
    expect(view.snapshot()).toMatchObject({ brokerConnected: false, availability: "offline" });
    view.stop();
  });

  it("is shown again when the broker, back, hands out the device's retained offline", () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-08T10:00:00.000Z") });
    const { view, watcher } = connectedView();
    watcher.emit("availability", "offline");
    watcher.emit("connection", false);
    vi.advanceTimersByTime(10_000);
    watcher.emit("connection", true);
    watcher.emit("availability", "offline");
    expect(view.snapshot()).toMatchObject({ brokerConnected: true, availability: "offline" });
    view.stop();
  });
});
