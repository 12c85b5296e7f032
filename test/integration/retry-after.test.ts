import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { IdpBusyError, NetworkClient } from "../../src/auth/network-client.js";
import type { EventPayload } from "../../src/mqtt/topics.js";
import { signIn, startAgentProcess } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

describe("Retry-After is honoured on every call to the identity provider", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  it("the network client sends nothing to a provider that asked for a pause, whatever the call", async () => {
    const http = new NetworkClient({ ca: bed.idp.caPem, timeoutMs: 5_000 });
    used.afterThisTest(() => http.close());
    const discovery = `${bed.idp.issuer}/.well-known/openid-configuration`;
    const path = `GET ${new URL(discovery).pathname}`;
    const before = bed.idp.requestCount(path);
    bed.idp.failWithRetryAfter("*", 3, 1);

    expect((await http.getJson(discovery)).status).toBe(503);
    // Discovery, keys, a device-code request, a refresh: the same client, the same pause.
    await expect(http.getJson(discovery)).rejects.toBeInstanceOf(IdpBusyError);
    await expect(http.getJson(`${bed.idp.issuer}/jwks`)).rejects.toBeInstanceOf(IdpBusyError);
    await expect(
      http.sendPostRequestAsync(`${bed.idp.issuer}/oauth2/v2.0/token`, { body: "grant_type=refresh_token" }),
    ).rejects.toBeInstanceOf(IdpBusyError);
    await expect(
      http.sendPostRequestAsync(`${bed.idp.issuer}/oauth2/v2.0/devicecode`, { body: "client_id=x" }),
    ).rejects.toBeInstanceOf(IdpBusyError);
    expect(bed.idp.requestCount(path) - before).toBe(1);
    expect(bed.idp.requestCount("refresh_token")).toBe(0);
    expect(http.quietForMs()).toBeGreaterThan(1_000);
  });

  it("a keep-alive refresh answered 503 with Retry-After waits that long before asking again (shipped bundle)", async () => {
    const agent = startAgentProcess(used, bed.env({ EDGE_SIGNIN_REFRESH_INTERVAL_SECONDS: "1" }));
    await signIn(used, agent);
    const before = bed.idp.requestCount("refresh_token");
    bed.idp.failWithRetryAfter("refresh_token", 4, 1);
    // The keep-alive's refresh meets the 503 within a second; the retry backoff (0.2 s here) would ask again
    // several times within the next 3 s if the pause were not kept.
    const deadline = Date.now() + 5_000;
    while (bed.idp.requestCount("refresh_token") === before && Date.now() < deadline) await sleep(50);
    expect(bed.idp.requestCount("refresh_token") - before).toBe(1);
    await sleep(3_000);
    expect(bed.idp.requestCount("refresh_token") - before).toBe(1);
    // After the pause the keep-alive asks again, and the person was never signed out.
    const resumed = Date.now() + 10_000;
    while (bed.idp.requestCount("refresh_token") - before < 2 && Date.now() < resumed) await sleep(50);
    expect(bed.idp.requestCount("refresh_token") - before).toBeGreaterThanOrEqual(2);
    expect(probe.all(agent.topics.event("signed_out"))).toStrictEqual([]);
  });

  it("a device-code request answered 503 with Retry-After is not repeated before it (shipped bundle)", async () => {
    bed.idp.failWithRetryAfter("device_authorization", 3, 1);
    const before = bed.idp.requestCount("device_authorization");
    const agent = startAgentProcess(used, bed.env());
    const failed = (await probe.next(agent.topics.event("sign_in_failed"), undefined, 30_000)).json<
      EventPayload<"sign_in_failed">
    >();
    expect(Date.parse(failed.retryAt) - Date.parse(failed.at)).toBeGreaterThanOrEqual(2_500);
    // Until just before the pause ends, counted from the agent's retryAt: the event may have taken a while to
    // arrive on a busy machine, and a fixed wait from its arrival would run past the pause.
    await sleep(Math.max(0, Date.parse(failed.retryAt) - 250 - Date.now()));
    expect(bed.idp.requestCount("device_authorization") - before).toBe(1);
    // Then a code, as soon as the pause is over.
    await probe.next(agent.topics.display, (m) => m.payload.length > 0, 15_000);
  });
});
