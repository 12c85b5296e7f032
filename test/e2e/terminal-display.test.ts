/**
 * The terminal display (shipped bundle) in real terminals of 80x24 and 40x12 under tmux: what a person sees on
 * the screen, not what the process wrote. The code and the address are on screen whatever the size, the QR code
 * only where it fits with them, lines break between words, and errors are said once, in plain words, in the
 * terminal's language.
 */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { deviceTopics, type DisplayPayload, type StatePayload } from "../../src/mqtt/topics.js";
import { SHIPPED_BIN } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { LONG_URI, USER_CODE } from "../helpers/display-scenes.js";
import { useTestBed } from "../helpers/fixture.js";

const run = promisify(execFile);
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
/** tmux on a socket of this test file's own: its server and sessions are ours alone, and ended after each test. */
const SOCKET = `edge-signin-test-${process.pid}`;
const tmux = (...args: string[]) => run("tmux", ["-L", SOCKET, ...args], { timeout: 10_000 });

afterEach(async () => {
  await tmux("kill-server").catch(() => undefined);
});

/** Starts the display in a detached tmux session of `columns`x`rows`; returns a reader of the visible screen. */
async function terminal(columns: number, rows: number, deviceId: string, env: Record<string, string>) {
  const session = `s${columns}x${rows}`;
  const vars = Object.entries({
    PATH: process.env["PATH"] ?? "",
    HOME: process.env["HOME"] ?? "/tmp",
    ...env,
  });
  await tmux(
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    String(columns),
    "-y",
    String(rows),
    ...vars.flatMap(([name, value]) => ["-e", `${name}=${value}`]),
    process.execPath,
    SHIPPED_BIN,
    "display",
    "--device",
    deviceId,
  );
  // Pane and window at exactly that size, whatever the server's default.
  await tmux("resize-window", "-t", session, "-x", String(columns), "-y", String(rows)).catch(
    () => undefined,
  );
  return async () => (await tmux("capture-pane", "-p", "-t", session)).stdout;
}

const screenOf = (read: () => Promise<string>, test: (screen: string) => boolean) => {
  let last = "";
  return eventually(
    async () => {
      last = await read();
      return test(last) ? last : undefined;
    },
    () => `the screen:\n${last}`,
    20_000,
    200,
  );
};

describe("the terminal display in a real terminal (tmux, shipped bundle)", () => {
  const { bed, probe } = useTestBed();
  const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

  async function showCode(deviceId: string) {
    const topics = deviceTopics("edge-signin", deviceId);
    await probe.publish(topics.availability, "online", { retain: true, qos: 1 });
    await probe.publish(
      topics.state,
      JSON.stringify({
        deviceId,
        state: "awaiting_user",
        since: iso(0),
        expiresAt: iso(900_000),
      } satisfies StatePayload),
      { retain: true, qos: 1 },
    );
    await probe.publish(
      topics.display,
      JSON.stringify({
        deviceId,
        userCode: USER_CODE,
        verificationUri: LONG_URI,
        message: "",
        issuedAt: iso(0),
        expiresAt: iso(900_000),
      } satisfies DisplayPayload),
      { retain: true, qos: 1 },
    );
  }

  /** The address as shown, its lines joined: what a person reads across the breaks. */
  const shownAddress = (screen: string) =>
    screen
      .split("\n")
      .map((line) => line.trim())
      .join("");

  for (const [columns, rows, lang] of [
    [80, 24, "en"],
    [40, 12, "en"],
    [40, 12, "de"],
  ] as const) {
    it(`shows the code and the whole address at ${columns}x${rows} (${lang})`, async () => {
      const deviceId = `term-${process.pid}-${columns}-${lang}`;
      await showCode(deviceId);
      const read = await terminal(columns, rows, deviceId, {
        EDGE_SIGNIN_MQTT_URL: bed.broker.url,
        LANG: lang === "de" ? "de_DE.UTF-8" : "en_US.UTF-8",
      });
      // Printed (in any form) and the screen settled: nothing more comes without a new message.
      await screenOf(read, (text) => text.includes("GTK 8ZJ 2LA") || text.includes(USER_CODE));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const screen = await read();
      await mkdir(ARTIFACTS, { recursive: true });
      await writeFile(new URL(`terminal-${columns}x${rows}-${lang}.txt`, ARTIFACTS), screen);
      expect(shownAddress(screen)).toContain(LONG_URI.replace("https://", ""));
      expect(screen).toContain("GTK 8ZJ 2LA");
      expect(screen).toContain(lang === "de" ? "Öffnen Sie" : "On your phone or computer, open");
      // Lines break between words: every line's words are whole words of the text.
      expect(screen).not.toMatch(/\bcompute$|\bcomp$|\bTele$/m);
      // A QR code only when it fits with the address and the code: never cut off at the top.
      const qrRows = screen.split("\n").filter((line) => /[█▀▄]/.test(line)).length;
      if (qrRows > 0) expect(screen.split("\n")[0]).not.toMatch(/[█▀▄]/);
    });
  }

  it("says a provider error once, in plain words, never the raw error", async () => {
    const deviceId = `term-${process.pid}-error`;
    const topics = deviceTopics("edge-signin", deviceId);
    const read = await terminal(80, 24, deviceId, { EDGE_SIGNIN_MQTT_URL: bed.broker.url, LANG: "C.UTF-8" });
    await screenOf(read, (text) => text.includes("connected to the broker"));
    await probe.publish(topics.availability, "online", { retain: true, qos: 1 });
    const retryAt = iso(90_000);
    await probe.publish(
      topics.state,
      JSON.stringify({
        deviceId,
        state: "error",
        since: iso(0),
        reason: "network",
        message: "identity provider unreachable (network_error) ECONNREFUSED",
        retryAt,
      } satisfies StatePayload),
      { retain: true, qos: 1 },
    );
    await probe.publish(
      topics.event("sign_in_failed"),
      JSON.stringify({
        id: `${deviceId}-1`,
        type: "sign_in_failed",
        deviceId,
        at: iso(0),
        reason: "network",
        message: "identity provider unreachable (network_error) ECONNREFUSED",
        retryAt,
      }),
      { qos: 1 },
    );
    const screen = await screenOf(read, (text) => text.includes("Can’t reach the sign-in service"));
    // The event comes after the state: give it its chance to be printed, then count.
    await probe.publish(topics.availability, "online", { retain: true, qos: 1 });
    await screenOf(read, (text) => text.split("device is online").length > 2);
    const later = await read();
    expect(screen).not.toContain("ECONNREFUSED");
    expect(later).not.toContain("network_error");
    expect(later.split("Can’t reach the sign-in service").length - 1).toBe(1);
  });
});
