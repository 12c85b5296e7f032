import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRemoteJWKSet, customFetch, jwtVerify } from "jose";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { approveSignIn } from "../../src/dev/person.js";
import type { Authenticated, SignInFailed } from "../../src/events.js";
import { deviceTopics, type DisplayPayload, type EventPayload } from "../../src/mqtt/topics.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";

/**
 * MSAL decodes ID tokens without checking them. These tests have the real local provider hand out tokens
 * a careful client must refuse, and check that no `authenticated` event ever leaves the agent for them.
 */
describe("ID tokens are verified before anyone hears of a sign-in", () => {
  const { bed, probe, newAgent } = useTestBed();
  let runs = 0;

  // Runs before useTestBed's afterEach stops the test's agents.
  afterEach(() => bed.idp.setIdTokenFault(undefined));

  /** Starts an agent, signs alice in on the provider's pages, and records what the agent said. */
  async function signInAlice(env: Record<string, string> = {}) {
    const log = captureLogger();
    // A state directory of its own: a token cache left by an earlier test would sign alice in silently.
    const config = bed.config({ EDGE_SIGNIN_STATE_DIR: join(bed.stateDir, `state-${++runs}`), ...env });
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const agent = newAgent(config, log.logger);
    const authenticated: Authenticated[] = [];
    const failed: SignInFailed[] = [];
    agent.on("authenticated", (e) => authenticated.push(e));
    agent.on("sign_in_failed", (e) => failed.push(e));
    await agent.start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });
    return { agent, topics, config, log, authenticated, failed };
  }

  it("publishes a verified token's claims with verified: true", async () => {
    const { topics, authenticated } = await signInAlice();
    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event).toMatchObject({
      type: "authenticated",
      verified: true,
      claims: { sub: "alice", iss: bed.idp.issuer, aud: bed.idp.clientId },
    });
    expect(event).not.toHaveProperty("idToken");
    expect(authenticated).toHaveLength(1);
    expect(authenticated[0]?.verified).toBe(true);
  });

  for (const fault of ["forged", "expired"] as const) {
    it(`refuses a ${fault} ID token: sign_in_failed invalid_token, never authenticated`, async () => {
      bed.idp.setIdTokenFault(fault);
      const { agent, topics, authenticated, failed } = await signInAlice();
      const event = (await probe.next(topics.event("sign_in_failed"))).json<EventPayload<"sign_in_failed">>();
      expect(event).toMatchObject({ type: "sign_in_failed", reason: "invalid_token" });
      expect(event.message).toMatch(fault === "forged" ? /signature/i : /exp/i);
      // The agent offers a fresh code afterwards, as after any failed attempt.
      await probe.next(topics.display, (m) => m.payload.length > 0);
      expect(authenticated).toStrictEqual([]);
      expect(failed.map((f) => f.reason)).toStrictEqual(["invalid_token"]);
      expect(probe.all(topics.event("authenticated"))).toStrictEqual([]);
      expect(agent.state.state).not.toBe("signed_in");
    });
  }

  it("keeps no session from a refused token: the next start shows a code instead of renewing it", async () => {
    bed.idp.setIdTokenFault("forged");
    const { agent: first, topics, config } = await signInAlice();
    await probe.next(
      topics.event("sign_in_failed"),
      (m) => m.json<{ reason: string }>().reason === "invalid_token",
    );
    await first.stop();
    bed.idp.setIdTokenFault(undefined);

    const authenticated: unknown[] = [];
    const agent = newAgent(config);
    agent.on("authenticated", (e) => authenticated.push(e));
    await agent.start();
    // A cached account would be renewed silently (state signed_in, no code); a new code means none was kept.
    await probe.next(topics.display, (m) => m.payload.length > 0);
    expect(authenticated).toStrictEqual([]);
  });

  it("lets only the configured claims leave the device, and the raw ID token only when asked", async () => {
    const { topics, log } = await signInAlice({
      EDGE_SIGNIN_CLAIMS: "sub, name",
      EDGE_SIGNIN_PUBLISH_ID_TOKEN: "true",
    });
    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event.claims).toStrictEqual({ sub: "alice", name: "Alice" });
    // The account summary follows the same policy: no user name leaks through it.
    expect(event.account).toMatchObject({ name: "Alice", username: "" });
    expect(typeof event.idToken).toBe("string");
    // A consumer can verify the published token itself, against the provider's JWKS.
    const trustDevCa = new UndiciAgent({ connect: { ca: bed.idp.caPem } });
    const jwks = createRemoteJWKSet(new URL(`${bed.idp.issuer}/jwks`), {
      [customFetch]: (url, init) =>
        undiciFetch(url, {
          ...init,
          headers: Object.fromEntries(init.headers.entries()),
          dispatcher: trustDevCa,
        }),
    });
    const { payload } = await jwtVerify(event.idToken ?? "", jwks, {
      issuer: bed.idp.issuer,
      audience: bed.idp.clientId,
    });
    expect(payload.sub).toBe("alice");
    await trustDevCa.close();
    // Still never in a log line.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(log.text()).not.toContain(event.idToken ?? "never");
    expect(log.text()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
