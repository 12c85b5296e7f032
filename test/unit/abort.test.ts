import { getEventListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { boundedSignal } from "../../src/reporters/abort.js";

describe("a bounded signal", () => {
  it("aborts with a TimeoutError when the time is up", async () => {
    const parent = new AbortController();
    const bounded = boundedSignal(parent.signal, 20);
    expect(bounded.signal.aborted).toBe(false);
    await sleep(60);
    expect(bounded.signal.aborted).toBe(true);
    expect(bounded.signal.reason).toBeInstanceOf(DOMException);
    expect((bounded.signal.reason as DOMException).name).toBe("TimeoutError");
    bounded.release();
  });

  it("aborts with the parent's reason when the parent aborts first, or already had", () => {
    const parent = new AbortController();
    const bounded = boundedSignal(parent.signal, 60_000);
    const reason = new Error("stopping");
    parent.abort(reason);
    expect(bounded.signal.reason).toBe(reason);
    bounded.release();
    const late = boundedSignal(parent.signal, 60_000);
    expect(late.signal.reason).toBe(reason);
    late.release();
  });

  it("leaves nothing on the parent once released: no listener, and no abort after release", async () => {
    const parent = new AbortController();
    const bounded = boundedSignal(parent.signal, 20);
    expect(getEventListeners(parent.signal, "abort")).toHaveLength(1);
    bounded.release();
    expect(getEventListeners(parent.signal, "abort")).toHaveLength(0);
    parent.abort();
    await sleep(60);
    expect(bounded.signal.aborted).toBe(false);
  });
});
