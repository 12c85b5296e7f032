import { describe, expect, it } from "vitest";
import type { EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { command, signIn, startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

describe("a provider that omits id_token on refresh (OpenID Connect Core 12.2; shipped bundle)", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  it("keeps the person signed in with the claims they had, on a refresh command and after a restart", async () => {
    const env = bed.env();
    const agent = startAgentProcess(used, env);
    const first = await signIn(used, agent, "carol");
    bed.idp.setOmitIdTokenOnRefresh(true);
    used.afterThisTest(() => bed.idp.setOmitIdTokenOnRefresh(false));

    expect(await command(used, agent.topics, "refresh")).toMatchObject({
      status: "ok",
      data: { account: { name: "Carol", username: "carol@example.com" } },
    });
    const refreshed = (
      await probe.next(
        agent.topics.event("authenticated"),
        (m) => m.json<{ method: string }>().method === "refresh",
      )
    ).json<EventPayload<"authenticated">>();
    expect(refreshed).toMatchObject({ method: "refresh", verified: true, idTokenReused: true });
    expect(refreshed.claims).toStrictEqual(first.claims);
    expect(refreshed.account).toStrictEqual(first.account);
    // And again: the refresh token the provider rotated in that answer is the one used next.
    expect(await command(used, agent.topics, "refresh")).toMatchObject({ status: "ok" });
    expect(probe.all(agent.topics.event("signed_out"))).toStrictEqual([]);
    expect(await agent.stop()).toBe(0);

    // At the next start the session is renewed the same way: still Carol, still signed in.
    const again = startAgentProcess(used, env);
    const renewed = await probe.next(
      again.topics.event("authenticated"),
      (m) =>
        m.json<{ method: string }>().method === "refresh" && m.json<{ id: string }>().id !== refreshed.id,
      30_000,
    );
    expect(renewed.json<EventPayload<"authenticated">>()).toMatchObject({
      idTokenReused: true,
      claims: { sub: "carol" },
    });
    // Retained state carries no personal data by default (EDGE_SIGNIN_STATE_ACCOUNT); the event says who.
    await probe.next(again.topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    expect(renewed.json<EventPayload<"authenticated">>().account).toMatchObject({ name: "Carol" });
    expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
  });
});
