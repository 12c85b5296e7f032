import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/index.js";
import { configProblems } from "../helpers/config.js";
import { applyClaimsPolicy } from "../../src/auth/claims-policy.js";

const base = { EDGE_SIGNIN_TENANT: "contoso", EDGE_SIGNIN_CLIENT_ID: "client" };
const SECRET = `whsec_${Buffer.alloc(32, 5).toString("base64")}`;

function problems(env: Record<string, string>): readonly string[] {
  return configProblems(() => loadConfig({ ...base, ...env }));
}

describe("reporting settings", () => {
  it("defaults: all claims, no raw ID token, no webhook, Home Assistant discovery off", () => {
    const config = loadConfig(base);
    expect(config.claims).toBeUndefined();
    expect(config.publishIdToken).toBe(false);
    expect(config.idTokenClockToleranceSeconds).toBe(60);
    expect(config.webhook).toBeUndefined();
    expect(config.homeAssistant).toStrictEqual({ discovery: false, discoveryPrefix: "homeassistant" });
  });

  it("reads the webhook, claims and Home Assistant settings", () => {
    const config = loadConfig({
      ...base,
      EDGE_SIGNIN_WEBHOOK_URL: "https://hooks.example.com/edge",
      EDGE_SIGNIN_WEBHOOK_SECRET: SECRET,
      EDGE_SIGNIN_WEBHOOK_TIMEOUT_SECONDS: "5",
      EDGE_SIGNIN_WEBHOOK_QUEUE_MAX: "50",
      EDGE_SIGNIN_CLAIMS: "sub, name,preferred_username",
      EDGE_SIGNIN_PUBLISH_ID_TOKEN: "true",
      EDGE_SIGNIN_HA_DISCOVERY: "true",
      EDGE_SIGNIN_HA_DISCOVERY_PREFIX: "ha",
    });
    expect(config.webhook).toStrictEqual({
      url: "https://hooks.example.com/edge",
      secret: SECRET,
      timeoutMs: 5000,
      queueMax: 50,
    });
    expect(config.claims).toStrictEqual(["sub", "name", "preferred_username"]);
    expect(config.publishIdToken).toBe(true);
    expect(config.homeAssistant).toStrictEqual({ discovery: true, discoveryPrefix: "ha" });
    expect(loadConfig({ ...base, EDGE_SIGNIN_CLAIMS: "all" }).claims).toBeUndefined();
  });

  it("names every wrong setting", () => {
    expect(problems({ EDGE_SIGNIN_WEBHOOK_URL: "https://hooks.example.com/" })).toStrictEqual([
      expect.stringMatching(/^EDGE_SIGNIN_WEBHOOK_SECRET: is required with EDGE_SIGNIN_WEBHOOK_URL/),
    ]);
    expect(
      problems({
        EDGE_SIGNIN_WEBHOOK_URL: "ftp://x",
        EDGE_SIGNIN_WEBHOOK_SECRET: SECRET,
        EDGE_SIGNIN_HA_DISCOVERY: "yes",
        EDGE_SIGNIN_HA_DISCOVERY_PREFIX: "home/#",
        EDGE_SIGNIN_PUBLISH_ID_TOKEN: "1",
        EDGE_SIGNIN_CLAIMS: "sub;name",
        EDGE_SIGNIN_WEBHOOK_QUEUE_MAX: "0",
      }).map((p) => p.split(":")[0]),
    ).toStrictEqual([
      "EDGE_SIGNIN_WEBHOOK_URL",
      "EDGE_SIGNIN_WEBHOOK_QUEUE_MAX",
      "EDGE_SIGNIN_HA_DISCOVERY_PREFIX",
      "EDGE_SIGNIN_CLAIMS",
      "EDGE_SIGNIN_PUBLISH_ID_TOKEN",
      "EDGE_SIGNIN_HA_DISCOVERY",
    ]);
  });
});

describe("webhook transport and key", () => {
  const webhook = (url: string, extra: Record<string, string> = {}) =>
    problems({ EDGE_SIGNIN_WEBHOOK_URL: url, EDGE_SIGNIN_WEBHOOK_SECRET: SECRET, ...extra });

  it("takes http:// only to this machine's loopback, elsewhere only when told to", () => {
    for (const url of [
      "https://hooks.example.com/e",
      "http://127.0.0.1:8080/e",
      "http://localhost/e",
      "http://[::1]/e",
    ])
      expect(webhook(url)).toStrictEqual([]);
    for (const url of [
      "http://hooks.example.com/e",
      "http://192.168.1.20:9000/e",
      "http://127.0.0.1.nip.io/e",
      "http://[::ffff:7f00:1]/e",
    ]) {
      expect(webhook(url)).toStrictEqual([
        expect.stringMatching(
          /^EDGE_SIGNIN_WEBHOOK_URL: expected an https:\/\/ URL .*EDGE_SIGNIN_WEBHOOK_ALLOW_HTTP=true$/,
        ),
      ]);
      expect(webhook(url, { EDGE_SIGNIN_WEBHOOK_ALLOW_HTTP: "true" })).toStrictEqual([]);
    }
  });

  it("refuses a key shorter than 32 bytes, or not in Standard Webhooks' form, without showing it", () => {
    for (const secret of [
      "k3y!",
      `whsec_${Buffer.alloc(24, 7).toString("base64")}`,
      Buffer.alloc(31, 7).toString("base64"),
      "correct horse battery staple and then some more words",
    ]) {
      const found = problems({
        EDGE_SIGNIN_WEBHOOK_URL: "https://h.example/",
        EDGE_SIGNIN_WEBHOOK_SECRET: secret,
      });
      expect(found).toStrictEqual([
        expect.stringMatching(
          /^EDGE_SIGNIN_WEBHOOK_SECRET: expected whsec_ and the base64 of at least 32 random bytes/,
        ),
      ]);
      expect(found.join()).not.toContain(secret);
    }
  });
});

describe("claims policy", () => {
  const claims = {
    sub: "alice",
    name: "Alice",
    preferred_username: "alice@example.com",
    oid: "o1",
    tid: "t1",
  };
  const account = { username: "alice@example.com", name: "Alice", tenantId: "t1", homeAccountId: "o1.t1" };

  it("passes everything without a policy", () => {
    expect(applyClaimsPolicy(claims, account, undefined)).toStrictEqual({ claims, account });
  });

  it("keeps only the listed claims, and the account fields derived from them", () => {
    expect(applyClaimsPolicy(claims, account, ["sub", "name"])).toStrictEqual({
      claims: { sub: "alice", name: "Alice" },
      account: { username: "", name: "Alice", tenantId: "t1", homeAccountId: "o1.t1" },
    });
    expect(applyClaimsPolicy(claims, account, ["tid"]).account).toStrictEqual({
      username: "",
      name: "",
      tenantId: "t1",
      homeAccountId: "",
    });
  });
});
