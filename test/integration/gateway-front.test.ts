import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DisplayPayload, EventPayload, StatePayload } from "../../src/mqtt/topics.js";
import { command, signIn, startAgentProcess } from "../helpers/agent-process.js";
import { GATEWAY_ANSWERS, startFaultyFront } from "../helpers/faulty-front.js";
import { useTestBed } from "../helpers/fixture.js";

const TROUBLE = "identity provider trouble while polling; keeping the code on screen and polling again later";

// An API gateway in front of the provider (Azure API Management, an nginx auth proxy, a WAF) answers with its own
// bodies. None of them is the provider's answer: no event, no end of the code, no end of the session.
for (const dialect of ["entra", "rfc8628"] as const) {
  describe(`a gateway's own answers in front of the provider (${dialect} dialect, shipped bundle)`, () => {
    const used = useTestBed({ idp: { dialect } });
    const { bed, probe } = used;

    const startBehindFront = async () => {
      const front = await startFaultyFront(bed.idp, bed.stateDir);
      used.afterThisTest(() => front.close());
      const agent = startAgentProcess(
        used,
        bed.env({
          EDGE_SIGNIN_AUTHORITY: front.authority,
          EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
          EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "agent-")),
        }),
      );
      return { front, agent };
    };

    it("polls answered by the gateway keep the code on screen: reason server, then the sign-in completes", async () => {
      const { front, agent } = await startBehindFront();
      const display = (
        await probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000)
      ).json<DisplayPayload>();
      await front.failPolls(GATEWAY_ANSWERS);
      await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "dave" });
      const event = (await probe.next(agent.topics.event("authenticated"), undefined, 60_000)).json<
        EventPayload<"authenticated">
      >();
      expect(event).toMatchObject({ method: "device_code", verified: true, claims: { sub: "dave" } });
      // One code the whole time: never replaced, never reported as failed or expired.
      const shown = probe.all(agent.topics.display).filter((m) => m.payload.length > 0);
      expect(shown.map((m) => m.json<DisplayPayload>().userCode)).toStrictEqual([display.userCode]);
      expect(probe.all(agent.topics.event("sign_in_failed"))).toStrictEqual([]);
      expect(probe.all(agent.topics.event("code_expired"))).toStrictEqual([]);
      const trouble = agent.logLines().filter((line) => line["msg"] === TROUBLE);
      expect(trouble.map((line) => line["reason"])).toStrictEqual(GATEWAY_ANSWERS.map(() => "server"));
    });

    it("a refresh answered by the gateway is no renewal: no event, no ok, reason server, still signed in", async () => {
      const { front, agent } = await startBehindFront();
      await signIn(used, agent, "erin");
      for (const answer of GATEWAY_ANSWERS) {
        void front.failRefreshes([answer]);
        const response = await command(used, agent.topics, "refresh");
        expect(response, `HTTP ${answer.status} ${answer.body}`).toMatchObject({ status: "error" });
        expect(response.error).toMatch(/still signed in: .*(no OAuth answer|not JSON)/);
      }
      const refusals = agent
        .logLines()
        .filter((line) => String(line["msg"]).startsWith("refresh on request failed, still signed in"));
      expect(refusals.map((line) => line["reason"])).toStrictEqual(GATEWAY_ANSWERS.map(() => "server"));
      expect(
        probe.all(agent.topics.event("authenticated")).map((m) => m.json<{ method: string }>().method),
      ).toStrictEqual(["device_code"]);
      expect(probe.all(agent.topics.event("signed_out"))).toStrictEqual([]);
      expect(probe.all(agent.topics.event("sign_in_failed"))).toStrictEqual([]);
      const state = probe.all(agent.topics.state).at(-1)?.json<StatePayload>();
      expect(state?.state).toBe("signed_in");
      // The session was kept: the provider's own answer renews it.
      expect(await command(used, agent.topics, "refresh")).toMatchObject({ status: "ok" });
    });

    it("a refresh at start answered by the gateway keeps the saved session and retries: reason server", async () => {
      const { front, agent } = await startBehindFront();
      await signIn(used, agent, "erin");
      expect(await agent.stop()).toBe(0);
      void front.failRefreshes([GATEWAY_ANSWERS[0] ?? { status: 200, body: "{}" }]);
      const again = startAgentProcess(used, agent.env);
      const failed = (await probe.next(again.topics.event("sign_in_failed"), undefined, 30_000)).json<
        EventPayload<"sign_in_failed">
      >();
      expect(failed.reason).toBe("server");
      const renewed = (
        await probe.next(
          again.topics.event("authenticated"),
          (m) => m.json<{ method: string }>().method === "refresh",
          30_000,
        )
      ).json<EventPayload<"authenticated">>();
      expect(renewed.claims).toMatchObject({ sub: "erin" });
      expect(probe.all(again.topics.event("signed_out"))).toStrictEqual([]);
    });
  });
}
