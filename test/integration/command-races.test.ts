import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { CACHE_FILE } from "../../src/auth/cache-store.js";
import { approveSignIn } from "../../src/dev/person.js";
import type { EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { command, shownCode, signIn, startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

/** Accounts and refresh tokens in the token cache file, or none when there is no file. */
async function cachedSessions(stateDir: string): Promise<number> {
  const text = await readFile(join(stateDir, CACHE_FILE), "utf8").catch(() => "{}");
  const cache = JSON.parse(text) as { Account?: object; RefreshToken?: object };
  return Object.keys(cache.Account ?? {}).length + Object.keys(cache.RefreshToken ?? {}).length;
}

describe("commands and token requests never race (shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  it("a cancel acknowledged while an approved poll is in flight keeps its tokens out of the cache and out of events", async () => {
    const env = bed.env();
    const agent = startAgentProcess(used, env);
    const code = await shownCode(used, agent.topics);
    const authenticated: unknown[] = [];
    void probe
      .next(agent.topics.event("authenticated"), () => (authenticated.push(1), false), 60_000)
      .catch(() => undefined);
    // The provider answers the next successful poll only when told: the poll is in flight, tokens on their way.
    const hold = bed.idp.holdTokenResponses();
    const sent = new Promise<void>((resolve) => {
      const off = bed.idp.onTokenResponse((response) => {
        if (response.status === 200) {
          off();
          resolve();
        }
      });
    });
    await approveSignIn(code.verificationUri, code.userCode, { ca: bed.idp.caPem, login: "alice" });
    await hold.held;

    expect(await command(used, agent.topics, "cancel")).toMatchObject({
      status: "ok",
      data: { state: "signed_out", idle: true },
    });
    hold.release();
    await sent;
    // MSAL would have written the cache and the agent raised its event within a moment of the answer.
    await sleep(1_500);
    expect(await cachedSessions(env["EDGE_SIGNIN_STATE_DIR"] ?? "")).toBe(0);
    expect(authenticated).toStrictEqual([]);
    expect(await command(used, agent.topics, "status")).toMatchObject({
      status: "ok",
      data: { state: "signed_out", idle: true },
    });
    expect(await agent.stop()).toBe(0);

    // A restart finds no session to renew: it shows a new code instead of signing anyone in silently.
    const again = startAgentProcess(used, env);
    await probe.next(again.topics.state, (m) => m.json<StatePayload>().state === "awaiting_user", 30_000);
    expect(authenticated).toStrictEqual([]);
  });

  it("a sign-out that lands while a refresh is in flight wins: the refreshed tokens never reach the cache or an event", async () => {
    const env = bed.env();
    const agent = startAgentProcess(used, env);
    await signIn(used, agent);
    const hold = bed.idp.holdTokenResponses();
    used.afterThisTest(() => hold.release());
    const refreshing = command(used, agent.topics, "refresh");
    await hold.held;
    // The sign-out does not wait for the provider: the refresh's answer is simply not for anyone any more.
    expect(await command(used, agent.topics, "sign-out")).toMatchObject({
      status: "ok",
      data: { state: "signed_out" },
    });
    hold.release();
    expect(await refreshing).toMatchObject({
      status: "error",
      error: "signed out while the session was being renewed",
    });
    await probe.next(agent.topics.display, (m) => m.payload.length > 0, 15_000);
    expect(
      probe
        .all(agent.topics.event("authenticated"))
        .filter((m) => m.json<{ method: string }>().method === "refresh"),
    ).toStrictEqual([]);
    expect(await cachedSessions(env["EDGE_SIGNIN_STATE_DIR"] ?? "")).toBe(0);
  });

  it("ten refresh commands at once share one refresh at the provider and one authenticated event", async () => {
    const agent = startAgentProcess(used, bed.env());
    await signIn(used, agent);
    const before = bed.idp.requestCount("refresh_token");
    const refreshEvents: string[] = [];
    const collecting = probe
      .next(
        agent.topics.event("authenticated"),
        (m) => {
          const event = m.json<EventPayload<"authenticated">>();
          if (event.method === "refresh") refreshEvents.push(event.id);
          return false;
        },
        8_000,
      )
      .catch(() => undefined);

    const answers = await Promise.all(
      Array.from({ length: 10 }, () => command(used, agent.topics, "refresh")),
    );
    expect(answers.map((a) => a.status)).toStrictEqual(Array(10).fill("ok"));
    await collecting;
    expect(refreshEvents).toHaveLength(1);
    expect(bed.idp.requestCount("refresh_token") - before).toBe(1);
  });

  it("a flood of commands is answered busy beyond the rate limit and never pushes an event out of the outbox", async () => {
    const agent = startAgentProcess(used, bed.env({ EDGE_SIGNIN_OUTBOX_MAX_EVENTS: "20" }));
    await signIn(used, agent);
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => command(used, agent.topics, "refresh", 30_000)),
    );
    const dropped = agent.logLines().filter((line) => String(line["msg"]).startsWith("outbox full"));
    expect(dropped).toStrictEqual([]);
    const busy = answers.filter((a) => a.status === "error" && a.error?.startsWith("busy"));
    // README "Commands": 10 at once, then 2 per second.
    expect(busy.length).toBeGreaterThanOrEqual(150);
  });

  it("many cancel + sign-in pairs do not make a device-code request each", async () => {
    const agent = startAgentProcess(used, bed.env());
    await shownCode(used, agent.topics);
    const before = bed.idp.requestCount("device_authorization");
    for (let pair = 0; pair < 40; pair++) {
      const cancel = command(used, agent.topics, "cancel");
      const signInAgain = command(used, agent.topics, "sign-in");
      await Promise.all([cancel, signInAgain]);
      await sleep(25);
    }
    await sleep(1_000);
    // One burst of the rate limit, and one code per MIN_CODE_GAP_MS: a couple of requests, not forty.
    expect(bed.idp.requestCount("device_authorization") - before).toBeLessThanOrEqual(2);
  });
});
