import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/index.js";

const base = { EDGE_SIGNIN_TENANT: "contoso", EDGE_SIGNIN_CLIENT_ID: "client" };

describe("proxy settings", () => {
  it("takes the standard variables, lower case first, as curl and undici do", () => {
    expect(loadConfig(base).proxy).toStrictEqual({
      httpsProxy: undefined,
      httpProxy: undefined,
      noProxy: undefined,
    });
    expect(
      loadConfig({
        ...base,
        HTTPS_PROXY: "http://upper:3128",
        https_proxy: "http://lower:3128",
        HTTP_PROXY: "http://plain:3128",
        NO_PROXY: "localhost,.internal",
      }).proxy,
    ).toStrictEqual({
      httpsProxy: "http://lower:3128",
      httpProxy: "http://plain:3128",
      noProxy: "localhost,.internal",
    });
  });

  it("rejects a proxy that is not an http(s) URL, naming the variable", () => {
    const load = () =>
      loadConfig({ ...base, HTTPS_PROXY: "proxy.example.com:3128", HTTP_PROXY: "socks://x:1" });
    expect(load).toThrow(ConfigError);
    try {
      load();
    } catch (error) {
      expect((error as ConfigError).problems).toStrictEqual([
        "HTTPS_PROXY: expected an http:// or https:// proxy URL",
        "HTTP_PROXY: expected an http:// or https:// proxy URL",
      ]);
    }
  });
});
