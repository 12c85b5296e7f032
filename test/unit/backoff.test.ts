import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../src/util/backoff.js";

const retry = { initialDelayMs: 1_000, maxDelayMs: 60_000 };

describe("backoff", () => {
  it("does not wait before the first attempt", () => {
    expect(backoffDelay(0, retry)).toBe(0);
  });

  it("doubles the ceiling per failure and stays between half and all of it", () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, retry, () => 0))).toStrictEqual([
      500, 1_000, 2_000, 4_000,
    ]);
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, retry, () => 1))).toStrictEqual([
      1_000, 2_000, 4_000, 8_000,
    ]);
  });

  it("never exceeds the maximum, however many failures", () => {
    expect(backoffDelay(1_000, retry, () => 1)).toBe(60_000);
    expect(backoffDelay(1_000, retry, () => 0)).toBe(30_000);
  });
});
