import {
  AuthError,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { DEVICE_CODE_GRANT, Rfc8628Error, Rfc8628NetworkModule } from "../../src/auth/rfc8628.js";

// The unit's edge: a recording stand-in for the real network client behind the decorator. The end-to-end
// behaviour against a real provider is in test/integration/rfc8628.test.ts.
interface Sent {
  method: "GET" | "POST";
  url: string;
  body: string | undefined;
}

function recorder(answer: (sent: Sent) => { status?: number; body: unknown }) {
  const sent: Sent[] = [];
  const respond = <T>(request: Sent): Promise<NetworkResponse<T>> => {
    sent.push(request);
    const { status = 200, body } = answer(request);
    return Promise.resolve({ status, headers: {}, body: body as T });
  };
  const inner: INetworkModule = {
    sendGetRequestAsync: <T>(url: string) => respond<T>({ method: "GET", url, body: undefined }),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) =>
      respond<T>({ method: "POST", url, body: options?.body }),
  };
  return { inner, sent };
}

const KEYCLOAK = {
  token_endpoint: "https://sso.example/realms/home/protocol/openid-connect/token",
  device_authorization_endpoint: "https://sso.example/realms/home/protocol/openid-connect/auth/device",
};
// What MSAL posts to: token_endpoint with "/token" replaced by "/devicecode".
const MSAL_DEVICE_URL = "https://sso.example/realms/home/protocol/openid-connect/devicecode";
const MSAL_POLL = "client_id=tv&grant_type=device_code&device_code=DC1&client_info=1";

const deviceAuthorization = {
  device_code: "DC1",
  user_code: "WDJB-MJHT",
  verification_uri: "https://sso.example/device",
  verification_uri_complete: "https://sso.example/device?user_code=WDJB-MJHT",
  expires_in: 600,
};

describe("RFC 8628 network decorator", () => {
  it("sends MSAL's device-code request to device_authorization_endpoint, keeping query and body", async () => {
    const { inner, sent } = recorder(() => ({ body: deviceAuthorization }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    await network.sendPostRequestAsync(`${MSAL_DEVICE_URL}?dc=EU`, { body: "client_id=tv&scope=openid" });
    expect(sent).toStrictEqual([
      {
        method: "POST",
        url: `${KEYCLOAK.device_authorization_endpoint}?dc=EU`,
        body: "client_id=tv&scope=openid",
      },
    ]);
  });

  it("recognises the device-code request when token_endpoint has no /token in it", async () => {
    const { inner, sent } = recorder(() => ({ body: deviceAuthorization }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, {
      token_endpoint: "https://idp.example/oauth/access",
      device_authorization_endpoint: "https://idp.example/oauth/device",
    });
    // MSAL's derived URL is then the token endpoint itself; the request without a grant type is the device one.
    await network.sendPostRequestAsync("https://idp.example/oauth/access", { body: "client_id=tv" });
    await network.sendPostRequestAsync("https://idp.example/oauth/access", {
      body: "grant_type=refresh_token&refresh_token=R",
    });
    expect(sent.map((s) => s.url)).toStrictEqual([
      "https://idp.example/oauth/device",
      "https://idp.example/oauth/access",
    ]);
  });

  it("adds the default interval of 5 s only when the provider sends none", async () => {
    const withInterval = recorder(() => ({ body: { ...deviceAuthorization, interval: 8 } }));
    const without = recorder(() => ({ body: deviceAuthorization }));
    const answer = async (inner: INetworkModule) =>
      (
        await Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK).sendPostRequestAsync<{ interval: number }>(
          MSAL_DEVICE_URL,
          { body: "client_id=tv" },
        )
      ).body.interval;
    expect(await answer(without.inner)).toBe(5);
    expect(await answer(withInterval.inner)).toBe(8);
  });

  it("keeps verification_uri_complete for the prompt, handed out once per user code", async () => {
    const { inner } = recorder(() => ({ body: deviceAuthorization }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    expect(network.takeVerificationUriComplete("WDJB-MJHT")).toBeUndefined();
    await network.sendPostRequestAsync(MSAL_DEVICE_URL, { body: "client_id=tv" });
    expect(network.takeVerificationUriComplete("WDJB-MJHT")).toBe(
      deviceAuthorization.verification_uri_complete,
    );
    expect(network.takeVerificationUriComplete("WDJB-MJHT")).toBeUndefined();
  });

  it("turns an error answer to the device request into an AuthError carrying the server's error", async () => {
    const { inner } = recorder(() => ({
      status: 400,
      body: { error: "unauthorized_client", error_description: "device grant not enabled" },
    }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    const failure = network.sendPostRequestAsync(MSAL_DEVICE_URL, { body: "client_id=tv" });
    await expect(failure).rejects.toBeInstanceOf(AuthError);
    await expect(failure).rejects.toMatchObject({
      errorCode: "post_request_failed",
      errorMessage: "unauthorized_client: device grant not enabled",
    });
  });

  it("says clearly when the provider offers no device authorization endpoint", () => {
    const { inner } = recorder(() => ({ body: {} }));
    expect(() =>
      Rfc8628NetworkModule.fromDiscovery(inner, { token_endpoint: KEYCLOAK.token_endpoint }),
    ).toThrow(Rfc8628Error);
    expect(() =>
      Rfc8628NetworkModule.fromDiscovery(inner, { token_endpoint: KEYCLOAK.token_endpoint }),
    ).toThrow(/no device_authorization_endpoint/);
  });

  it("polls with the RFC grant type and leaves every other parameter as it was", async () => {
    const { inner, sent } = recorder(() => ({ status: 400, body: { error: "authorization_pending" } }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    await network.sendPostRequestAsync(KEYCLOAK.token_endpoint, { body: MSAL_POLL });
    expect(Object.fromEntries(new URLSearchParams(sent[0]?.body))).toStrictEqual({
      client_id: "tv",
      grant_type: DEVICE_CODE_GRANT,
      device_code: "DC1",
      client_info: "1",
    });
  });

  it("passes other token requests through untouched", async () => {
    const { inner, sent } = recorder(() => ({ body: { access_token: "x" } }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    const body = "grant_type=refresh_token&refresh_token=R%20S&client_id=tv";
    await network.sendPostRequestAsync(KEYCLOAK.token_endpoint, { body });
    expect(sent).toStrictEqual([{ method: "POST", url: KEYCLOAK.token_endpoint, body }]);
  });

  it("answers slow_down as pending and holds every later poll of that code back 5 s more each time", async () => {
    const answers = ["slow_down", "authorization_pending", "slow_down", "authorization_pending"];
    const { inner, sent } = recorder(() => ({ status: 400, body: { error: answers.shift() } }));
    const sleeps: number[] = [];
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK, {
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    });
    const poll = (body = MSAL_POLL) =>
      network.sendPostRequestAsync<{ error: string }>(KEYCLOAK.token_endpoint, { body });

    expect((await poll()).body.error).toBe("authorization_pending"); // slow_down, MSAL keeps polling
    expect((await poll()).body.error).toBe("authorization_pending");
    expect((await poll()).body.error).toBe("authorization_pending"); // slow_down again
    // Another code is not slowed down by the first one's answers.
    await poll(MSAL_POLL.replace("DC1", "DC2"));
    expect(sleeps).toStrictEqual([5_000, 5_000]);
    await poll();
    expect(sleeps).toStrictEqual([5_000, 5_000, 10_000]);
    expect(sent).toHaveLength(5);
  });

  it("hands access_denied and expired_token to MSAL as the server said them", async () => {
    for (const error of ["access_denied", "expired_token"]) {
      const { inner } = recorder(() => ({ status: 400, body: { error, error_description: "x" } }));
      const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
      const response = await network.sendPostRequestAsync(KEYCLOAK.token_endpoint, { body: MSAL_POLL });
      expect(response).toStrictEqual({ status: 400, headers: {}, body: { error, error_description: "x" } });
    }
  });

  it("ends a held-back poll when closed", async () => {
    const { inner, sent } = recorder(() => ({ status: 400, body: { error: "slow_down" } }));
    const network = Rfc8628NetworkModule.fromDiscovery(inner, KEYCLOAK);
    await network.sendPostRequestAsync(KEYCLOAK.token_endpoint, { body: MSAL_POLL });
    const held = network.sendPostRequestAsync(KEYCLOAK.token_endpoint, { body: MSAL_POLL });
    network.close();
    await expect(held).rejects.toThrow();
    expect(sent).toHaveLength(1);
  });
});
