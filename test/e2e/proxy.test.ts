import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { startConnectProxy, type ConnectProxy } from "../helpers/connect-proxy.js";
import { useTestBed, type WatchedAgentProcess } from "../helpers/fixture.js";

/**
 * The identity provider behind an HTTPS proxy, as on corporate and hotel networks, through the shipped bundle
 * (its slim undici once lacked the `connect()` that proxy tunnels need: every request failed before reaching
 * the proxy, while the same set-up run from source signed in).
 */

// Every character that must be percent-encoded in a URL's user information, in both parts.
const USERNAME = String.raw`dom\dev@ice:x/y%z`;
const PASSWORD = String.raw`pa:ss@w/o%rd\secret`;
const proxyUrl = (proxy: ConnectProxy, username: string, password: string) => {
  const url = new URL(proxy.url);
  return `${url.protocol}//${encodeURIComponent(username)}:${encodeURIComponent(password)}@${url.host}`;
};

/** Everything the process printed and every MQTT message on its device's topics, as one text. */
function everythingSaid(agent: WatchedAgentProcess): string {
  const topics = [
    agent.topics.display,
    agent.topics.state,
    agent.topics.availability,
    agent.topics.event("authenticated"),
  ];
  const payloads = topics.flatMap((topic) => agent.probe.all(topic).map((m) => m.payload.toString("utf8")));
  return [agent.cli.stdout(), agent.cli.stderr(), ...payloads].join("\n");
}

describe("the shipped agent behind an HTTPS proxy", () => {
  const { bed, startAgent } = useTestBed({ probe: false });
  const providerHost = () => new URL(bed.idp.authority).host;

  it("signs in through an authenticating CONNECT proxy, with credentials that need percent-encoding", async () => {
    const proxy = await startConnectProxy({ credentials: { username: USERNAME, password: PASSWORD } });
    try {
      const agent = await startAgent({ HTTPS_PROXY: proxyUrl(proxy, USERNAME, PASSWORD) });
      const prompt = await agent.prompt();
      await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "frank" });
      expect((await agent.event("authenticated")).claims).toMatchObject({ sub: "frank" });
      // Every request went through the proxy's tunnel to the provider; none was refused or went around it.
      expect(proxy.refused()).toBe(0);
      expect(new Set(proxy.tunnels())).toStrictEqual(new Set([providerHost()]));
      expect(await agent.stop()).toBe(0);
      const said = everythingSaid(agent);
      expect(said).not.toContain(PASSWORD);
      expect(said).not.toContain(encodeURIComponent(PASSWORD));
    } finally {
      await proxy.close();
    }
  });

  it("goes around the proxy for hosts in NO_PROXY", async () => {
    const proxy = await startConnectProxy({ credentials: { username: USERNAME, password: PASSWORD } });
    try {
      const agent = await startAgent({
        HTTPS_PROXY: proxyUrl(proxy, USERNAME, PASSWORD),
        NO_PROXY: `example.invalid,${new URL(bed.idp.authority).hostname}`,
      });
      const prompt = await agent.prompt();
      await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "grace" });
      expect((await agent.event("authenticated")).claims).toMatchObject({ sub: "grace" });
      expect(proxy.tunnels()).toStrictEqual([]);
      expect(proxy.refused()).toBe(0);
      expect(await agent.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it("reports a proxy that refuses its credentials as a clear state error, and never prints the password", async () => {
    const proxy = await startConnectProxy({ credentials: { username: USERNAME, password: PASSWORD } });
    const wrong = String.raw`wr:ong@pa/ss%word\x`;
    try {
      const agent = await startAgent({ HTTPS_PROXY: proxyUrl(proxy, USERNAME, wrong) });
      const state = await agent.state((s) => s.state === "error");
      expect(state).toMatchObject({ state: "error", reason: "network" });
      expect(state.message).toMatch(/proxy/i);
      expect(state.message).toMatch(/407/);
      expect(proxy.refused()).toBeGreaterThan(0);
      expect(proxy.tunnels()).toStrictEqual([]);
      expect(await agent.stop()).toBe(0);
      const said = everythingSaid(agent);
      expect(said).toMatch(/proxy/i);
      expect(said).not.toContain(wrong);
      expect(said).not.toContain(encodeURIComponent(wrong));
    } finally {
      await proxy.close();
    }
  });
});
