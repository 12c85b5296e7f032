import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import type { EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { eventually, signIn, startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

const TWO_HOURS = 2 * 3600;

async function refreshTokens(stateDir: string): Promise<number> {
  const cache = JSON.parse(await readFile(join(stateDir, CACHE_FILE), "utf8")) as { RefreshToken?: object };
  return Object.keys(cache.RefreshToken ?? {}).length;
}

describe("time you can trust: ID tokens judged by the provider's clock (shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  /** The provider's clock runs `seconds` off for this test: the device's clock is off by -seconds. */
  function providerClockOff(seconds: number): void {
    bed.idp.setClockOffset(seconds);
    used.afterThisTest(() => bed.idp.setClockOffset(0));
  }

  it("signs a person in on a device whose clock is 2 h ahead, and reports the skew in state and health", async () => {
    providerClockOff(-TWO_HOURS);
    const agent = startAgentProcess(used, bed.env());
    const event = await signIn(used, agent);
    expect(event).toMatchObject({ method: "device_code", verified: true, claims: { sub: "alice" } });

    const state = (
      await probe.next(agent.topics.state, (m) => m.json<StatePayload>().state === "signed_in")
    ).json<StatePayload>();
    expect(Math.abs((state.clockSkewSeconds ?? 0) + TWO_HOURS)).toBeLessThanOrEqual(2);
    const warned = agent.logLines().find((line) => line["clockSkewSeconds"] !== undefined);
    expect(warned?.["msg"]).toMatch(/^the device's clock is \d+ s ahead of the identity provider's/);
    const health = JSON.parse(
      await readFile(join(agent.env["EDGE_SIGNIN_STATE_DIR"] ?? "", "health.json"), "utf8"),
    ) as { clockSkewSeconds?: number };
    expect(Math.abs((health.clockSkewSeconds ?? 0) + TWO_HOURS)).toBeLessThanOrEqual(2);
  });

  it("signs a person in on a device 5 min behind a provider whose ID tokens carry nbf", async () => {
    providerClockOff(300);
    const agent = startAgentProcess(used, bed.env());
    expect(await signIn(used, agent)).toMatchObject({ method: "device_code", claims: { sub: "alice" } });
  });

  it("keeps a saved session through a restart with the clock 2 h off: renewed silently, nothing deleted", async () => {
    const env = bed.env();
    const first = startAgentProcess(used, env);
    await signIn(used, first);
    expect(await first.stop()).toBe(0);

    providerClockOff(-TWO_HOURS);
    const again = startAgentProcess(used, env);
    const renewed = await probe.next(
      again.topics.event("authenticated"),
      (m) => m.json<{ method: string }>().method === "refresh",
      30_000,
    );
    expect(renewed.json<EventPayload<"authenticated">>().claims["sub"]).toBe("alice");
    expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
    expect(await refreshTokens(env["EDGE_SIGNIN_STATE_DIR"] ?? "")).toBe(1);
  });

  it("a renewal whose ID token fails a time check never deletes the saved session", async () => {
    const env = bed.env();
    const first = startAgentProcess(used, env);
    await signIn(used, first);
    expect(await first.stop()).toBe(0);

    // Expired by the provider's own clock too: no correction makes it pass.
    bed.idp.setIdTokenFault("expired");
    used.afterThisTest(() => bed.idp.setIdTokenFault(undefined));
    const again = startAgentProcess(used, env);
    const failed = await probe.next(again.topics.event("sign_in_failed"), undefined, 30_000);
    expect(failed.json<EventPayload<"sign_in_failed">>().reason).toBe("invalid_token");
    expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
    expect(await refreshTokens(env["EDGE_SIGNIN_STATE_DIR"] ?? "")).toBe(1);

    // The provider is honest again: the same session is renewed on the next attempt, no new sign-in.
    bed.idp.setIdTokenFault(undefined);
    await eventually(
      () =>
        probe
          .all(again.topics.event("authenticated"))
          .find((m) => m.json<{ method: string }>().method === "refresh"),
      "the session renewed",
    );
    expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
  });
});
