/**
 * The web display's HTTP side over real sockets. The MQTT side is the one edge replaced here: a DeviceWatcher
 * that is never started is just an event emitter, so the test emits what the broker would deliver.
 * (test/e2e/web-display.test.ts runs the whole thing against Mosquitto in Chromium.)
 */
import { afterEach, describe, expect, it } from "vitest";
import type { DeviceSnapshot } from "../../src/display/device-view.js";
import { DeviceView } from "../../src/display/device-view.js";
import { WebDisplayServer } from "../../src/display/web-server.js";
import { DeviceWatcher } from "../../src/mqtt/device-watcher.js";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { captureLogger } from "../helpers/fixture.js";
import { rawClient } from "../helpers/raw-client.js";

const DEVICE = "tv-1";
const PROMPT: DisplayPayload = {
  deviceId: DEVICE,
  userCode: "ABCD-EFGH",
  verificationUri: "https://idp.example/device",
  verificationUriComplete: "https://idp.example/device?user_code=ABCD-EFGH",
  message: "Open https://idp.example/device and enter ABCD-EFGH",
  issuedAt: new Date().toISOString(),
  // Still current while the test runs: a display never shows a prompt past its expiresAt.
  expiresAt: new Date(Date.now() + 15 * 60_000).toISOString(),
};

let server: WebDisplayServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(heartbeatMs?: number, maxStreams?: number) {
  const watcher = new DeviceWatcher(
    {
      urls: ["mqtt://127.0.0.1:1"],
      clientId: "unused",
      protocolVersion: 5,
      username: undefined,
      password: undefined,
      ca: undefined,
      cert: undefined,
      key: undefined,
      connectTimeoutMs: 10_000,
    },
    deviceTopics("edge-signin", DEVICE),
  );
  const view = new DeviceView(DEVICE, watcher);
  view.start();
  server = new WebDisplayServer({
    host: "127.0.0.1",
    port: 0,
    views: new Map([[DEVICE, view]]),
    logger: captureLogger().logger,
    ...(heartbeatMs !== undefined ? { heartbeatMs } : {}),
    ...(maxStreams !== undefined ? { maxStreams } : {}),
  });
  await server.start();
  return { watcher, url: server.url };
}

/** Reads an event stream, one SSE block (ending in a blank line) at a time. */
async function openStream(url: string) {
  const response = await fetch(url);
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    response,
    async nextBlock(): Promise<string> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          return block;
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error("stream ended");
        buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
      }
    },
    async nextSnapshot(): Promise<DeviceSnapshot> {
      for (;;) {
        const block = await this.nextBlock();
        const data = /^event: snapshot\ndata: (.*)$/s.exec(block)?.[1];
        if (data !== undefined) return JSON.parse(data) as DeviceSnapshot;
      }
    },
    close: () => reader.cancel(),
  };
}

describe("the web display server", () => {
  it("sends retry and the current snapshot on connect, then every change, with the QR code of the complete URL", async () => {
    const { watcher, url } = await start();
    watcher.emit("connection", true);
    watcher.emit("availability", "online");
    watcher.emit("display", PROMPT);

    const stream = await openStream(`${url}/devices/${DEVICE}/events`);
    expect(stream.response.headers.get("cache-control")).toBe("no-store");
    expect(await stream.nextBlock()).toBe("retry: 2000");
    const first = await stream.nextSnapshot();
    expect(first).toStrictEqual({
      deviceId: DEVICE,
      brokerConnected: true,
      availability: "online",
      state: null,
      prompt: { ...PROMPT, qrUrl: PROMPT.verificationUriComplete, qrSvg: expect.stringMatching(/^<svg /) },
      pause: null,
      signedOut: null,
      serverTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      // The screen it makes, in the page's language (English: no Accept-Language): the code, still current. With
      // no product name set, the headline names none (the device id means nothing to a person).
      screen: expect.objectContaining({ kind: "code", headline: "Sign in" }),
    });

    watcher.emit("state", {
      state: "signed_in",
      since: "2026-11-25T15:01:00.000Z",
      deviceId: DEVICE,
      account: { username: "eve@example.com", name: "Eve", tenantId: "t", homeAccountId: "h" },
    });
    watcher.emit("display", null);
    // Nothing about the account reaches the page for a sign-in longer ago than DISPLAY_SIGNED_IN_SECONDS
    // (e2e/display-hostile.test.ts shows the name's short moment), and never the tenant or account ids.
    expect((await stream.nextSnapshot()).state).toStrictEqual({
      state: "signed_in",
      since: "2026-11-25T15:01:00.000Z",
      deviceId: DEVICE,
    });
    expect(await stream.nextSnapshot()).toMatchObject({ prompt: null, state: { state: "signed_in" } });
    await stream.close();
  });

  it("keeps idle streams alive with comment lines", async () => {
    const { url } = await start(50);
    const stream = await openStream(`${url}/devices/${DEVICE}/events`);
    await stream.nextSnapshot();
    expect(await stream.nextBlock()).toBe(": keep-alive");
    await stream.close();
  });

  it("ends open streams on stop, so pages notice and reconnect", async () => {
    const { url } = await start();
    const stream = await openStream(`${url}/devices/${DEVICE}/events`);
    await stream.nextSnapshot();
    await server?.stop();
    server = undefined;
    await expect(stream.nextBlock()).rejects.toThrow();
  });

  it("holds at most maxStreams pages open, answering the next with 503 and Retry-After", async () => {
    const { url } = await start(undefined, 2);
    const first = await openStream(`${url}/devices/${DEVICE}/events`);
    const second = await openStream(`${url}/devices/${DEVICE}/events`);
    await first.nextSnapshot();
    await second.nextSnapshot();
    const third = await fetch(`${url}/devices/${DEVICE}/events`);
    expect([third.status, third.headers.get("retry-after")]).toStrictEqual([503, "10"]);
    // A page that goes away makes room for the next.
    await first.close();
    await expect
      .poll(async () => (await fetch(`${url}/healthz`)).json())
      .toStrictEqual({ devices: { [DEVICE]: { brokerConnected: false, pages: 1 } } });
    const fourth = await openStream(`${url}/devices/${DEVICE}/events`);
    expect(fourth.response.status).toBe(200);
    await second.close();
    await fourth.close();
  });

  it("answers what is not a page with 404, 405 or 204, never a crash", async () => {
    const { url } = await start();
    expect((await fetch(`${url}/devices/other`)).status).toBe(404);
    const german = await fetch(`${url}/devices/other`, { headers: { "accept-language": "de-CH, en;q=0.5" } });
    expect(await german.text()).toContain(
      "<h1>Dieses Gerät gibt es hier nicht</h1><p>Dieser Anzeige-Server zeigt:</p>",
    );
    expect((await fetch(`${url}/devices/%E0%A4%A`)).status).toBe(404);
    expect((await fetch(`${url}/devices/${DEVICE}`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${url}/favicon.ico`)).status).toBe(204);
    const head = await fetch(`${url}/devices/${DEVICE}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    const script = await fetch(`${url}/assets/display.js`);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await (await fetch(`${url}/healthz`)).json()).toStrictEqual({
      devices: { [DEVICE]: { brokerConnected: false, pages: 0 } },
    });
  });

  it("says which address is taken instead of crashing", async () => {
    const { url } = await start();
    const port = Number(new URL(url).port);
    const second = new WebDisplayServer({
      host: "127.0.0.1",
      port,
      views: new Map(),
      logger: captureLogger().logger,
    });
    await expect(second.start()).rejects.toThrow(
      new RegExp(
        `^the web display cannot listen on 127\\.0\\.0\\.1:${port}: .*; set EDGE_SIGNIN_DISPLAY_PORT to a free port`,
      ),
    );
    await second.stop();
  });
});

/** A raw HTTP client from one loopback address (Linux answers all of 127.0.0.0/8): one "machine" on the LAN. */
describe("fair shares: one client on the network cannot take the display from the TV", () => {
  it("keeps a place for the TV while one machine holds streams and another idle connections", async () => {
    const watcher = new DeviceWatcher(
      {
        urls: ["mqtt://127.0.0.1:1"],
        clientId: "t",
        protocolVersion: 5,
        connectTimeoutMs: 10_000,
        username: undefined,
        password: undefined,
        ca: undefined,
        cert: undefined,
        key: undefined,
      },
      deviceTopics("edge-signin", DEVICE),
    );
    const view = new DeviceView(DEVICE, watcher);
    view.start();
    // Small caps so the test stays small; the defaults have the same proportions (16 and 32 per client).
    server = new WebDisplayServer({
      host: "127.0.0.1",
      port: 0,
      views: new Map([[DEVICE, view]]),
      logger: captureLogger().logger,
      maxStreams: 24,
    });
    await server.start();
    const url = server.url;
    const streams = rawClient(url, "127.0.0.2");
    const idlers = rawClient(url, "127.0.0.4");
    try {
      for (let i = 0; i < 40; i++) await streams.stream(`/devices/${DEVICE}/events`);
      for (let i = 0; i < 120; i++) await idlers.idle().catch(() => undefined);
      const pages = async () =>
        ((await (await fetch(`${url}/healthz`)).json()) as { devices: Record<string, { pages: number }> })
          .devices[DEVICE]?.pages;
      await expect.poll(pages).toBe(16);
      // The TV, from its own address: its page and its stream, at once.
      const tv = rawClient(url, "127.0.0.3");
      const socket = await tv.stream(`/devices/${DEVICE}/events`);
      const first = await new Promise<string>((resolve, reject) => {
        let text = "";
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
          if (text.includes("event: snapshot")) resolve(text);
        });
        socket.once("close", () => reject(new Error(`closed: ${text}`)));
      });
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      expect(await pages()).toBe(17);
      // Neither other machine holds more than its share.
      await expect.poll(() => streams.live()).toBeLessThanOrEqual(16);
      await expect.poll(() => idlers.live()).toBeLessThanOrEqual(32);
      tv.close();
    } finally {
      streams.close();
      idlers.close();
    }
  });
});
