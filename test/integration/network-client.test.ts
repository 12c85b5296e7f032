import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { generate } from "selfsigned";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runDeviceFlow } from "../../src/auth/device-flow.js";
import { ResponseTooLargeError } from "../../src/http/bounded-body.js";
import {
  IdpAnswerError,
  IdpUnreachableError,
  MAX_BODY_BYTES,
  NetworkClient,
} from "../../src/auth/network-client.js";
import { startDevIdentityProvider, type DevIdentityProvider } from "../../src/dev/identity-provider.js";
import { startConnectProxy, type ConnectProxy } from "../helpers/connect-proxy.js";
import { captureLogger } from "../helpers/fixture.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server whose next answers the test scripts, counting what reached it. */
async function scriptedServer(): Promise<{
  url: string;
  /** The server's self-signed certificate, to trust (the agent speaks https only to a provider). */
  ca: string;
  hits: () => number;
  connections: () => number;
  next: (...h: Handler[]) => void;
  close: () => Promise<void>;
}> {
  const queue: Handler[] = [];
  let hits = 0;
  let connections = 0;
  const tls = await generate([{ name: "commonName", value: "127.0.0.1" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
  });
  const server: Server = createServer({ key: tls.private, cert: tls.cert }, (req, res) => {
    hits += 1;
    req.resume();
    req.once("end", () => {
      const handler =
        queue.shift() ??
        ((_q, r) =>
          r.writeHead(400, { "content-type": "application/json" }).end('{"error":"authorization_pending"}'));
      handler(req, res);
    });
  });
  server.on("secureConnection", () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/v2.0/token`,
    ca: tls.cert,
    hits: () => hits,
    connections: () => connections,
    next: (...handlers) => queue.push(...handlers),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const poll = { body: "client_id=x&grant_type=device_code&device_code=secret-code-1", headers: {} };
const TROUBLE = "identity provider trouble while polling; keeping the code on screen and polling again later";
const refresh = { body: "client_id=x&grant_type=refresh_token&refresh_token=r", headers: {} };
const json =
  (status: number, body: object, headers: Record<string, string> = {}): Handler =>
  (_req, res) =>
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));

describe("the identity provider network client", () => {
  let server: Awaited<ReturnType<typeof scriptedServer>>;
  let client: NetworkClient;
  const log = captureLogger();

  beforeAll(async () => {
    server = await scriptedServer();
  });
  afterEach(async () => {
    await client.close();
  });
  afterAll(async () => {
    await server.close();
  });

  const newClient = () =>
    (client = new NetworkClient({
      ca: server.ca,
      timeoutMs: 1_000,
      log: log.logger,
    }));

  const deviceAuthorization = json(200, {
    device_code: "secret-code-1",
    user_code: "WDJB-MJHT",
    verification_uri: "https://sso.example/device",
    expires_in: 60,
    interval: 1,
  });
  const flow = (signal = new AbortController().signal) => {
    const codes: string[] = [];
    const tokens = runDeviceFlow(
      {
        http: client,
        deviceAuthorizationEndpoint: server.url.replace("/token", "/devicecode"),
        tokenEndpoint: server.url,
        client: { clientId: "x", scopes: ["openid"] },
        retry: { initialDelayMs: 400, maxDelayMs: 800 },
        log: log.logger,
      },
      signal,
      (code) => codes.push(code.userCode),
    );
    return { codes, tokens };
  };

  it("keeps the code through trouble on a poll and polls again later, never reading trouble as a result", async () => {
    newClient();
    const html: Handler = (_req, res) =>
      res.writeHead(503, { "content-type": "text/html" }).end("<h1>down</h1>");
    server.next(
      deviceAuthorization,
      json(503, { error: "temporarily_unavailable" }),
      html,
      // A TLS socket cannot be reset itself; the TCP connection under it can (an RST, as a dropping firewall sends).
      (req) => (req.socket as Socket & { _parent?: Socket })._parent?.resetAndDestroy(),
      () => undefined, // never answers: the 1 s timeout ends it
      json(403, { message: "Forbidden" }),
      json(200, {}),
      json(400, { error: "authorization_pending" }),
      json(200, { access_token: "a", token_type: "Bearer", id_token: "i", refresh_token: "r" }),
    );
    const before = server.hits();
    const { codes, tokens } = flow();
    expect(await tokens).toStrictEqual({ accessToken: "a", idToken: "i", refreshToken: "r" });
    expect(codes).toStrictEqual(["WDJB-MJHT"]);
    expect(server.hits() - before).toBe(9);
    const trouble = log.lines().filter((line) => line["msg"] === TROUBLE);
    expect(trouble.map((line) => line["reason"])).toStrictEqual([
      "server",
      "server",
      "network",
      "network",
      "server",
      "server",
    ]);
    // The warnings say what happened, never the device code.
    expect(log.text()).not.toContain("secret-code-1");
  });

  it("ends on the provider's access_denied and expired_token, and at once on an abort", async () => {
    newClient();
    server.next(deviceAuthorization, json(400, { error: "authorization_declined" }));
    await expect(flow().tokens).rejects.toMatchObject({ name: "DeviceFlowEnded", outcome: "declined" });
    server.next(deviceAuthorization, json(400, { error: "expired_token" }));
    await expect(flow().tokens).rejects.toMatchObject({ outcome: "expired" });
    server.next(deviceAuthorization);
    const abort = new AbortController();
    const { codes, tokens } = flow(abort.signal);
    while (codes.length === 0) await sleep(20);
    abort.abort();
    await expect(tokens).rejects.toMatchObject({ outcome: "cancelled" });
  });

  it("waits longer after a request timed out: a provider behind a slow link is answered the second time", async () => {
    newClient();
    // Each answer takes 1.5 s, more than the 1 s setting.
    const slow: Handler = (_req, res) =>
      void setTimeout(() => {
        if (!res.destroyed) json(200, { issuer: "https://example.test" })(_req, res);
      }, 1_500);
    server.next(slow, slow);
    await expect(client.getJson(server.url)).rejects.toBeInstanceOf(IdpUnreachableError);
    expect(await client.getJson(server.url)).toStrictEqual({
      status: 200,
      body: { issuer: "https://example.test" },
    });
    const warned = log
      .lines()
      .filter((l) => String(l["msg"]).startsWith("no answer from the identity provider"));
    expect(warned.at(-1)).toMatchObject({ waitedSeconds: 1, nextTimeoutSeconds: 2 });
  });

  it("refuses a refresh answer that is no OAuth answer before MSAL could read it as a success", async () => {
    newClient();
    for (const handler of [
      json(403, { message: "Forbidden" }),
      json(503, { message: "Service Unavailable" }),
      json(200, {}),
      (_req: IncomingMessage, res: ServerResponse) => res.writeHead(502).end("<html>bad gateway</html>"),
    ]) {
      server.next(handler);
      await expect(client.sendPostRequestAsync(server.url, refresh)).rejects.toBeInstanceOf(IdpAnswerError);
    }
    server.next(json(200, { access_token: "a", token_type: "Bearer" }));
    expect((await client.sendPostRequestAsync(server.url, refresh)).status).toBe(200);
  });

  it("does not read an answer over the size bound whole", async () => {
    newClient();
    server.next((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`{"keys":["${"k".repeat(MAX_BODY_BYTES.get)}`);
      res.end('"]}');
    });
    await expect(client.getJson(server.url.replace("/token", "/keys"))).rejects.toBeInstanceOf(
      ResponseTooLargeError,
    );
  });

  it("sends a request made while another is in flight over the same connection, after it", async () => {
    newClient();
    const order: string[] = [];
    const slow: Handler = (req, res) =>
      setTimeout(() => (order.push("poll"), json(400, { error: "authorization_pending" })(req, res)), 100);
    server.next(slow, (req, res) => (order.push("keys"), json(200, { keys: [] })(req, res)));
    const before = server.connections();
    const [pending, keys] = await Promise.all([
      client.sendPostRequestAsync<{ error?: string }>(server.url, poll),
      client.getJson(server.url.replace("/token", "/keys")),
    ]);
    expect(pending.body.error).toBe("authorization_pending");
    expect(keys).toStrictEqual({ status: 200, body: { keys: [] } });
    expect(order).toStrictEqual(["poll", "keys"]);
    expect(server.connections() - before).toBe(1);
  });

  it("leaves requests other than polls as they are: MSAL and the agent's loop handle those", async () => {
    newClient();
    server.next(json(503, { error: "temporarily_unavailable" }));
    expect((await client.sendPostRequestAsync(server.url, refresh)).status).toBe(503);
    // A TLS socket cannot be reset itself; the TCP connection under it can (an RST, as a dropping firewall sends).
    server.next((req) => (req.socket as Socket & { _parent?: Socket })._parent?.resetAndDestroy());
    await expect(client.sendPostRequestAsync(server.url, refresh)).rejects.toBeInstanceOf(
      IdpUnreachableError,
    );
  });
});

describe("the identity provider through an HTTPS proxy", () => {
  let idp: DevIdentityProvider;
  let proxy: ConnectProxy;

  beforeAll(async () => {
    [idp, proxy] = await Promise.all([startDevIdentityProvider(), startConnectProxy()]);
  });
  afterAll(async () => {
    await Promise.all([idp.close(), proxy.close()]);
  });

  const discovery = () => `${idp.authority}.well-known/openid-configuration`;

  it("tunnels through HTTPS_PROXY, trusting the extra CA inside the tunnel", async () => {
    const client = new NetworkClient({
      ca: idp.caPem,
      timeoutMs: 5_000,
      proxy: { httpsProxy: proxy.url, httpProxy: undefined, noProxy: undefined },
    });
    try {
      const before = proxy.tunnels().length;
      const { status, body } = await client.getJson(discovery());
      expect(status).toBe(200);
      expect(body).toMatchObject({ issuer: idp.issuer });
      expect(proxy.tunnels().slice(before)).toStrictEqual([new URL(idp.authority).host]);
    } finally {
      await client.close();
    }
  });

  it("goes direct for hosts in NO_PROXY", async () => {
    const client = new NetworkClient({
      ca: idp.caPem,
      timeoutMs: 5_000,
      proxy: { httpsProxy: proxy.url, httpProxy: undefined, noProxy: "localhost,127.0.0.1" },
    });
    try {
      const before = proxy.tunnels().length;
      expect((await client.getJson(discovery())).status).toBe(200);
      expect(proxy.tunnels().length).toBe(before);
    } finally {
      await client.close();
    }
  });
});
