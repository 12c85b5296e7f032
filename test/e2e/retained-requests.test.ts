import { describe, expect, it } from "vitest";
import { RETAINED_REQUEST_ERROR } from "../../src/requests/commands.js";
import { eventually, signIn, startAgentProcess, type AgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";
import { startTcpGate } from "../helpers/tcp-gate.js";

const RETAINED = ["sign-out", "sign-in", "refresh"] as const;

describe("a request published with the retain flag", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  /** The next answer to the request with `transaction`, on the command's default response topic. */
  const answer = (agent: AgentProcess, command: string, transaction: string) =>
    probe
      .next(
        agent.topics.response(command),
        (m) => m.json<{ transaction?: unknown }>().transaction === transaction,
        30_000,
      )
      .then((m) => m.json<{ status: string; error?: string }>());

  const refusedEach = async (agent: AgentProcess, tx: string) => {
    for (const command of RETAINED)
      expect(await answer(agent, command, `${tx}-${command}`)).toStrictEqual({
        status: "error",
        error: RETAINED_REQUEST_ERROR,
        transaction: `${tx}-${command}`,
      });
  };

  it.each([
    ["MQTT 5", "5"],
    ["MQTT 3.1.1", "4"],
  ])(
    "is history on %s: answered, never run, across two restarts and a link reset",
    async (_label, version) => {
      const gate = await startTcpGate(bed.broker.url);
      used.afterThisTest(() => gate.close());
      const env = bed.env({ EDGE_SIGNIN_MQTT_URL: gate.url, EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: version });
      const first = startAgentProcess(used, env);
      const signedIn = await signIn(used, first);
      expect(signedIn.claims).toMatchObject({ sub: "alice" });
      expect(await first.stop()).toBe(0);

      // Published while the agent is down, as a dashboard that retains everything does.
      const tx = `retained-${version}`;
      for (const command of RETAINED)
        await probe.publish(
          first.topics.request(command),
          JSON.stringify({ transaction: `${tx}-${command}` }),
          {
            retain: true,
          },
        );

      let agent = first;
      for (let restart = 1; restart <= 2; restart++) {
        agent = startAgentProcess(used, env);
        await refusedEach(agent, tx);
        if (restart === 1) expect(await agent.stop()).toBe(0);
      }
      // The link drops for a moment without a restart: the broker hands the retained requests over again.
      const reconnects = agent
        .logLines()
        .filter((l) => String(l["msg"]).startsWith("connected to broker")).length;
      gate.reset();
      await eventually(
        () =>
          agent.logLines().filter((l) => String(l["msg"]).startsWith("connected to broker")).length >
            reconnects || undefined,
        "the agent reconnected through the gate",
        30_000,
      );
      await refusedEach(agent, tx);

      // Nothing ran: nobody was signed out, no new code was shown, and each request was logged once, not per delivery.
      expect(probe.all(agent.topics.event("signed_out"))).toStrictEqual([]);
      const warnings = agent
        .logLines()
        .filter((l) => String(l["msg"]).startsWith("retained request not run"));
      expect(warnings.map((l) => l["command"]).sort()).toStrictEqual([...RETAINED].sort());
      const states = probe.all(agent.topics.state).filter((m) => m.payload.length > 0);
      expect(states.at(-1)?.json<{ state: string }>().state).toBe("signed_in");

      for (const command of RETAINED)
        await probe.publish(agent.topics.request(command), "", { retain: true });
    },
    180_000,
  );

  it("published while the agent listens on MQTT 5 is refused at once (retain as published)", async () => {
    const agent = await used.startAgent();
    const signedIn = await signIn(used, agent);
    expect(signedIn.claims).toMatchObject({ sub: "alice" });
    await agent.probe.publish(agent.topics.request("sign-out"), JSON.stringify({ transaction: "live" }), {
      retain: true,
    });
    expect(await answer(agent, "sign-out", "live")).toStrictEqual({
      status: "error",
      error: RETAINED_REQUEST_ERROR,
      transaction: "live",
    });
    expect(probe.all(agent.topics.event("signed_out"))).toStrictEqual([]);
    await agent.probe.publish(agent.topics.request("sign-out"), "", { retain: true });
  }, 90_000);
});
