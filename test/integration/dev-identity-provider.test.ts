import {
  AuthError,
  PublicClientApplication,
  type AuthenticationResult,
  type DeviceCodeRequest,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from "@azure/msal-node";
import { Agent, buildConnector, fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevIdentityProvider, type DevIdentityProvider } from "../../src/dev/identity-provider.js";
import { approveSignIn, declineSignIn } from "../../src/dev/person.js";

type DeviceCodeResponse = Parameters<DeviceCodeRequest["deviceCodeCallback"]>[0];

describe("dev identity provider with real MSAL", () => {
  let idp: DevIdentityProvider;
  let client: Client;

  beforeAll(async () => {
    idp = await startDevIdentityProvider({ pollIntervalSeconds: 1 });
    client = await connect(idp);
  });

  afterAll(async () => {
    await client?.dispatcher.close();
    await idp?.close();
  });

  it("signs alice in through the device code flow, then refreshes silently", async () => {
    const pca = msal(client);
    let prompt: DeviceCodeResponse | undefined;
    const result = await signIn(pca, (response) => {
      prompt = response;
      return approveSignIn(response.verificationUri, response.userCode, { ca: idp.caPem, login: "alice" });
    });

    expect(prompt?.interval).toBe(1);
    expect(prompt?.message).toBe(
      `To sign in, use a web browser to open the page ${prompt?.verificationUri} and enter the code ${prompt?.userCode} to authenticate.`,
    );
    expect(result.idTokenClaims).toMatchObject({ sub: "alice", name: "Alice", iss: idp.issuer });
    expect(result.account?.username).toBe("alice@example.com");

    const polls = idp.tokenRequests();
    const refreshed = await pca.acquireTokenSilent({
      account: result.account!,
      scopes: [],
      forceRefresh: true,
    });
    expect(idp.tokenRequests()).toBe(polls + 1);
    expect(refreshed.idTokenClaims).toMatchObject({ sub: "alice", name: "Alice" });
    expect(refreshed.accessToken).not.toBe(result.accessToken);
  });

  it("rejects with access_denied when the person declines", async () => {
    const declined = signIn(msal(client), (response) =>
      declineSignIn(response.verificationUri, response.userCode, { ca: idp.caPem }),
    );
    expect((await rejection(declined)).errorMessage).toContain("access_denied");
  });

  it("the person reports a wrong code clearly", async () => {
    const wrongCode = approveSignIn(`${idp.authority}device`, "BCDF-GHJK", { ca: idp.caPem, login: "alice" });
    await expect(wrongCode).rejects.toThrow(/code you entered is incorrect/);
  });

  it("rejects when nobody approves before the code expires", async () => {
    const shortLived = await startDevIdentityProvider({ deviceCodeTtlSeconds: 2, pollIntervalSeconds: 1 });
    const shortClient = await connect(shortLived);
    try {
      const expired = signIn(msal(shortClient), () => Promise.resolve());
      const error = await rejection(expired);
      expect(`${error.errorCode} ${error.errorMessage}`).toMatch(/expired_token|device_code_expired/);
    } finally {
      await shortClient.dispatcher.close();
      await shortLived.close();
    }
  });

  // The issuer (127.0.0.1) differs from the authority (localhost), as External ID's does.
  it("MSAL's own discovery accepts the issuer only when its host is a known authority", async () => {
    const urlRequest = { scopes: [], redirectUri: "http://localhost/redirect" };
    const strict = msal(client, { knownAuthorities: [hostOf(idp.authority)], authorityMetadata: undefined });
    // MSAL swallows issuer_validation_failed into endpoints_resolution_error; `lenient` shows the issuer was the cause.
    await expect(strict.getAuthCodeUrl(urlRequest)).rejects.toMatchObject({
      errorCode: "endpoints_resolution_error",
    });
    const lenient = msal(client, { authorityMetadata: undefined });
    await expect(lenient.getAuthCodeUrl(urlRequest)).resolves.toContain(hostOf(idp.authority));
    const configured = msal(client, { knownAuthorities: [hostOf(idp.authority)] });
    await expect(configured.getAuthCodeUrl(urlRequest)).resolves.toContain(hostOf(idp.authority));
  });
});

describe("dev identity provider under a public host name (as a compose service)", () => {
  it("carries the name in its URLs, tokens and certificate; a person reaches it through connectTo", async () => {
    const idp = await startDevIdentityProvider({
      publicHost: "identity-provider.test",
      pollIntervalSeconds: 1,
    });
    // `.test` never resolves (RFC 2606): every connection goes to the loopback port, as to a published port.
    const port = new URL(idp.authority).port;
    const connectTo = { [`identity-provider.test:${port}`]: `127.0.0.1:${port}` };
    const connector = buildConnector({ ca: idp.caPem });
    const dispatcher = new Agent({
      connect: (target, callback) => connector({ ...target, hostname: "127.0.0.1" }, callback),
    });
    try {
      expect(idp.authority).toBe(`https://identity-provider.test:${port}/`);
      expect(idp.issuer).toBe(`https://identity-provider.test:${port}`);
      const discovery = await (
        await fetch(`${idp.authority}.well-known/openid-configuration`, { dispatcher })
      ).text();
      const pca = msal({ idp, dispatcher, discovery });

      // Without the mapping the person's browser cannot find the provider at all.
      const lost = signIn(pca, (response) =>
        approveSignIn(response.verificationUri, response.userCode, { ca: idp.caPem, login: "erin" }),
      );
      await expect(lost).rejects.toThrow(/^fetch failed$/);

      const result = await signIn(pca, (response) =>
        approveSignIn(response.verificationUri, response.userCode, {
          ca: idp.caPem,
          login: "erin",
          connectTo,
        }),
      );
      expect(result.idTokenClaims).toMatchObject({
        sub: "erin",
        iss: `https://identity-provider.test:${port}`,
      });
    } finally {
      await dispatcher.close();
      await idp.close();
    }
  });
});

interface Client {
  idp: DevIdentityProvider;
  dispatcher: Agent;
  discovery: string;
}

async function connect(idp: DevIdentityProvider): Promise<Client> {
  const dispatcher = new Agent({ connect: { ca: idp.caPem } });
  const response = await fetch(`${idp.authority}.well-known/openid-configuration`, { dispatcher });
  return { idp, dispatcher, discovery: await response.text() };
}

const hostOf = (url: string) => new URL(url).host;

/** Discovery is handed over as authorityMetadata, which MSAL takes without validating its issuer. */
function msal(
  { idp, dispatcher, discovery }: Client,
  auth: { knownAuthorities?: string[]; authorityMetadata?: string } = {},
): PublicClientApplication {
  return new PublicClientApplication({
    auth: {
      clientId: idp.clientId,
      authority: idp.authority,
      knownAuthorities: [hostOf(idp.authority), hostOf(idp.issuer)],
      authorityMetadata: discovery,
      ...auth,
    },
    system: { protocolMode: "OIDC", networkClient: networkClient(dispatcher) },
  });
}

/** Runs the device code flow while `person` acts on the prompt; a failing person cancels the polling. */
async function signIn(
  pca: PublicClientApplication,
  person: (response: DeviceCodeResponse) => Promise<void>,
): Promise<AuthenticationResult> {
  let acting: Promise<void> = Promise.resolve();
  const request: DeviceCodeRequest = {
    scopes: [],
    deviceCodeCallback: (response) => {
      acting = person(response).catch((error: unknown) => {
        request.cancel = true;
        throw error;
      });
      // Reported by the `finally` below; this only stops Node flagging it as unhandled meanwhile.
      void acting.catch(() => undefined);
    },
  };
  try {
    const result = await pca.acquireTokenByDeviceCode(request);
    if (!result) throw new Error("MSAL finished the device code flow without a result");
    return result;
  } finally {
    await acting;
  }
}

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

function networkClient(dispatcher: Agent): INetworkModule {
  const send = async <T>(
    method: "GET" | "POST",
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> => {
    const response = await fetch(url, {
      method,
      headers: options?.headers,
      body: options?.body,
      dispatcher,
      signal: timeout ? AbortSignal.timeout(timeout) : undefined,
    });
    return {
      headers: Object.fromEntries(response.headers),
      body: (await response.json()) as T,
      status: response.status,
    };
  };
  return {
    sendGetRequestAsync: (url, options, timeout) => send("GET", url, options, timeout),
    sendPostRequestAsync: (url, options) => send("POST", url, options),
  };
}
