import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { discover, METADATA_FILE } from "../../src/auth/discovery.js";
import { NetworkClient } from "../../src/auth/network-client.js";
import { isSecureEndpoint } from "../../src/http/secure-endpoint.js";

const URL_ = "https://idp.example.test/.well-known/openid-configuration";
const document = (scheme: string) => ({
  issuer: "https://idp.example.test/",
  authorization_endpoint: `${scheme}://idp.example.test/authorize`,
  token_endpoint: `${scheme}://idp.example.test/token`,
  jwks_uri: `${scheme}://idp.example.test/keys`,
  device_authorization_endpoint: `${scheme}://idp.example.test/device`,
});

describe("https only for every identity-provider endpoint (finding 7)", () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "edge-signin-secure-endpoint-"));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it.each([
    ["https://idp.example.test/token", true],
    ["http://idp.example.test/token", false],
    ["http://10.0.0.5/token", false],
    ["http://127.0.0.1:8080/token", false],
    ["http://localhost:8080/token", false],
    ["http://[::1]:8080/token", false],
    ["http://127.0.0.1.evil.test/token", false],
    ["http://localhost.evil.test/token", false],
    ["ftp://idp.example.test/token", false],
    ["not a url", false],
  ])("%s: %s", (url, secure) => {
    expect(isSecureEndpoint(url)).toBe(secure);
  });

  /** The provider's side at the unit's edge: serves `body` for the discovery URL. */
  const serving = (body: unknown) => {
    const requests: string[] = [];
    const http = {
      getJson: (url: string) => {
        requests.push(url);
        return Promise.resolve({ status: 200, body });
      },
    } as unknown as NetworkClient;
    return { http, requests };
  };

  it("refuses a discovery document naming http:// endpoints", async () => {
    await expect(discover(URL_, serving(document("http")).http, stateDir)).rejects.toThrow(
      /token_endpoint|authorization_endpoint|jwks_uri/,
    );
  });

  it("does not use a cached authority-metadata.json naming http:// endpoints, however fresh", async () => {
    await writeFile(
      join(stateDir, METADATA_FILE),
      JSON.stringify({ url: URL_, fetchedAt: Date.now(), document: document("http") }),
    );
    const provider = serving(document("https"));
    const result = await discover(URL_, provider.http, stateDir);
    expect({ source: result.source, token: result.document.token_endpoint }).toStrictEqual({
      source: "network",
      token: "https://idp.example.test/token",
    });
  });

  it("sends nothing to an http:// endpoint off loopback, whatever names it", async () => {
    const client = new NetworkClient({ timeoutMs: 2_000 });
    try {
      await expect(
        client.sendPostRequestAsync("http://idp.example.test/token", { body: "refresh_token=secret" }),
      ).rejects.toThrow("POST http://idp.example.test: refused, expected an https:// URL");
    } finally {
      await client.close();
    }
  });
});
