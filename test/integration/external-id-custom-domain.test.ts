import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { METADATA_FILE } from "../../src/auth/discovery.js";
import { NetworkClient } from "../../src/auth/network-client.js";
import type { EventPayload } from "../../src/mqtt/topics.js";
import { approveSignIn } from "../../src/dev/person.js";
import { useTestBed } from "../helpers/fixture.js";
import { startRecordingProxy } from "../helpers/recording-proxy.js";

const TENANT_ID = "aaaabbbb-0000-cccc-1111-dddd2222eeee";

/**
 * An External ID tenant behind a custom URL domain, as Entra serves one (src/dev/identity-provider.ts,
 * `externalIdTenantId`): the custom host is a second loopback address, the issuer stays on `ciamlogin.com`.
 * Nothing in the authority's host name says "External ID"; only the discovery document does.
 */
describe("External ID on a custom URL domain (shipped bundle)", () => {
  const used = useTestBed({ idp: { host: "127.0.0.2", externalIdTenantId: TENANT_ID } });
  const { bed } = used;

  it("shows the tenant's own code page, keeps every request on the custom host and signs the person in", async () => {
    const customHost = new URL(bed.idp.authority).host;
    expect(bed.idp.authority).toBe(`https://${customHost}/${TENANT_ID}/`);
    expect(bed.idp.issuer).toBe(`https://${TENANT_ID}.ciamlogin.com/${TENANT_ID}/v2.0`);
    // Anything bound for another host (ciamlogin.com, microsoft.com, login.microsoftonline.com) meets this proxy.
    const proxy = await startRecordingProxy();
    used.afterThisTest(() => proxy.close());
    const env = {
      // Left to the agent: nothing configured says which kind of provider this is.
      EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "auto",
      HTTPS_PROXY: proxy.url,
      NO_PROXY: "127.0.0.2",
    };

    const agent = await used.startAgent(env);
    const prompt = await agent.prompt();
    expect(prompt.verificationUri).toBe(`https://${customHost}/common/oauth2/deviceauth`);
    expect(prompt.message).toContain(`https://${customHost}/common/oauth2/deviceauth`);
    expect(prompt.message).not.toContain("microsoft.com/devicelogin");

    const authenticated = agent.event("authenticated");
    await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "dana" });
    const event: EventPayload<"authenticated"> = await authenticated;
    expect(event).toMatchObject({ method: "device_code", verified: true });
    expect(event.claims).toMatchObject({ sub: "dana", iss: bed.idp.issuer, tid: TENANT_ID });

    // Entra's v2.0 document and endpoints only: never the v1 document, never the v1 device-code endpoint.
    expect(bed.idp.requestCount(`GET /${TENANT_ID}/v2.0/.well-known/openid-configuration`)).toBe(1);
    expect(bed.idp.requestCount(`GET /${TENANT_ID}/.well-known/openid-configuration`)).toBe(0);
    expect(bed.idp.requestCount(`POST /${TENANT_ID}/oauth2/devicecode`)).toBe(0);
    expect(bed.idp.requestCount("device_authorization")).toBe(1);
    expect(proxy.seen()).toStrictEqual([]);

    // The next start renews the session from the cached document, still only on the custom host.
    expect(await agent.stop()).toBe(0);
    const again = await used.startAgent({
      ...env,
      EDGE_SIGNIN_DEVICE_ID: agent.env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
      EDGE_SIGNIN_STATE_DIR: agent.env["EDGE_SIGNIN_STATE_DIR"] ?? "",
    });
    const renewed = await again.event("authenticated");
    expect(renewed).toMatchObject({
      method: "refresh",
      verified: true,
      claims: { sub: "dana", tid: TENANT_ID },
    });
    expect(bed.idp.requestCount(`GET /${TENANT_ID}/v2.0/.well-known/openid-configuration`)).toBe(1);
    expect(proxy.seen()).toStrictEqual([]);
  });

  it("drops Entra's v1 document cached by an earlier version and shows the tenant's code page", async () => {
    const env = bed.env({ EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "auto" });
    const stateDir = env["EDGE_SIGNIN_STATE_DIR"] ?? "";
    const http = new NetworkClient({ ca: bed.idp.caPem, timeoutMs: 5_000 });
    used.afterThisTest(() => http.close());
    // What the agent used to cache for this authority: the document at {authority}.well-known, fresh.
    const url = `${bed.idp.authority}.well-known/openid-configuration`;
    const v1 = await http.getJson(url);
    expect(v1.body).toMatchObject({ issuer: `https://sts.windows.net/${TENANT_ID}/` });
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(
      join(stateDir, METADATA_FILE),
      JSON.stringify({ url, fetchedAt: Date.now(), document: v1.body }),
      { mode: 0o600 },
    );
    const v1Codes = bed.idp.requestCount(`POST /${TENANT_ID}/oauth2/devicecode`);

    const agent = await used.startAgent({
      EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "auto",
      EDGE_SIGNIN_DEVICE_ID: env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
      EDGE_SIGNIN_STATE_DIR: stateDir,
    });
    const prompt = await agent.prompt();
    expect(prompt.verificationUri).toBe(
      `https://${new URL(bed.idp.authority).host}/common/oauth2/deviceauth`,
    );
    expect(bed.idp.requestCount(`POST /${TENANT_ID}/oauth2/devicecode`)).toBe(v1Codes);
  });
});
