import { outputShows as eventually } from "../helpers/eventually.js";
import { afterEach, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DeviceSnapshot } from "../../src/display/device-view.js";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { runCli, startCli, type RunningCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";

describe("edge-signin display", () => {
  const { bed, probe, newAgent } = useTestBed();
  let cli: RunningCli | undefined;

  // Runs before useTestBed's afterEach stops the test's agents.
  afterEach(() => {
    cli?.child.kill("SIGKILL");
    cli = undefined;
  });

  it("names, on stderr, a variable that is no setting (a misspelt one is ignored, never silently)", async () => {
    cli = startCli(["display", "--device", `tv-typo-${process.pid}`], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      EDGE_SIGNIN_MQTT_URI: "mqtt://elsewhere:1883",
      EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: "false",
    });
    const running = cli;
    await eventually(
      () => running.stdout(),
      (out) => out.includes("[display] connected to the broker"),
    );
    expect(running.stderr()).toBe(
      "edge-signin: ignored a variable that is no setting: EDGE_SIGNIN_MQTT_URI (misspelt? the settings are listed in README.md, Configuration, and by edge-signin agent --help)\n",
    );
  });

  it("draws the code, the URL and a text QR code on the terminal, then who signed in", async () => {
    const deviceId = `tv-term-${process.pid}`;
    const topics = deviceTopics("edge-signin", deviceId);
    cli = startCli(["display", "--device", deviceId], { EDGE_SIGNIN_MQTT_URL: bed.broker.url });
    const running = cli;
    await eventually(
      () => running.stdout(),
      (out) => out.includes("[display] connected to the broker"),
    );

    // The display names who signed in only when the retained state carries the account (STATE_ACCOUNT).
    const agent = newAgent(
      bed.config({ EDGE_SIGNIN_DEVICE_ID: deviceId, EDGE_SIGNIN_STATE_ACCOUNT: "true" }),
    );
    await agent.start();
    const shown = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    const screen = await eventually(
      () => running.stdout(),
      (out) => (out.includes(shown.userCode) && out.includes("▀") ? out : undefined),
    );
    expect(screen).toContain(`open\n    ${shown.verificationUri.replace("https://", "")}\n`);
    expect(screen).toContain(`\n    ${shown.userCode}\n`);
    // The caption says what the QR code does: fill in the code (a complete URI), or open the page only.
    expect(screen).toContain(
      shown.verificationUriComplete ? "or scan the QR code\n" : "or scan the QR code to open the page\n",
    );
    // The QR code: rows of half blocks above the address and the code, all the same width.
    const qrRows = screen.split("\n").filter((row) => /[█▀▄]/.test(row));
    expect(screen.lastIndexOf("▀")).toBeLessThan(screen.lastIndexOf(shown.userCode));
    expect(qrRows.length).toBeGreaterThan(10);
    expect(new Set(qrRows.map((row) => [...row].length)).size).toBe(1);

    await approveSignIn(shown.verificationUri, shown.userCode, { ca: bed.idp.caPem, login: "dave" });
    await eventually(
      () => running.stdout(),
      (out) => out.includes("[display] Signed in as Dave"),
    );
    expect(running.stdout()).toContain("[display] display cleared");

    await agent.stop();
    await eventually(
      () => running.stdout(),
      (out) => out.includes("[display] This device is offline"),
    );
    running.child.kill("SIGTERM");
    expect(await running.exited).toBe(0);
    expect(running.stderr()).not.toContain("Error");
  });

  it("serves the web display: a redirect to the device's page, the page, and the snapshot as Server-Sent Events", async () => {
    const deviceId = `tv-webcli-${process.pid}`;
    cli = startCli(["display", "--web", "--device", deviceId], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      EDGE_SIGNIN_DISPLAY_PORT: "0",
    });
    const running = cli;
    const url = await eventually(
      () => running.stdout(),
      (out) => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1],
    );

    const root = await fetch(`${url}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe(`/devices/${deviceId}`);
    const page = await fetch(`${url}/devices/${deviceId}`);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(await page.text()).toContain(`data-device="${deviceId}"`);

    const events = await fetch(`${url}/devices/${deviceId}/events`);
    expect(events.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = events.body?.getReader();
    let text = "";
    while (!text.includes("event: snapshot\ndata: ") || !text.endsWith("\n\n")) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      text += new TextDecoder().decode(chunk.value as Uint8Array);
    }
    await reader?.cancel();
    expect(text.startsWith("retry: 2000\n\n")).toBe(true);
    const snapshot = JSON.parse(/data: (.*)\n/.exec(text)?.[1] ?? "null") as DeviceSnapshot;
    expect(snapshot).toMatchObject({ deviceId, availability: "unknown", state: null, prompt: null });

    running.child.kill("SIGTERM");
    expect(await running.exited).toBe(0);
    // Every stdout line of the web display is a JSON log record.
    for (const line of running.stdout().trim().split("\n"))
      expect(() => JSON.parse(line) as unknown).not.toThrow();
  });

  it("says once what to check when it hears nothing from the device (a typo in --device looked like 'about to show a code')", async () => {
    cli = startCli(["display", "--device", `no-such-tv-${process.pid}`], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      EDGE_SIGNIN_DISPLAY_NEVER_HEARD_SECONDS: "1",
    });
    const running = cli;
    const out = await eventually(
      () => running.stdout(),
      (text) => (text.includes("no word from this device yet") ? text : undefined),
    );
    expect(out.split("\n").filter((line) => line.includes("no word from this device yet"))).toStrictEqual([
      "[display] no word from this device yet: check the device id, that its agent runs, and that the agent and this display use the same broker and topic prefix (and that the broker's ACL lets this display read the topics)",
    ]);
  });

  it("speaks the browser's language, unless DISPLAY_LANGUAGE or the page's ?lang= says otherwise", async () => {
    const deviceId = `tv-lang-${process.pid}`;
    const pageLanguage = async (env: Record<string, string>, query: string, acceptLanguage: string) => {
      cli = startCli(["display", "--web", "--device", deviceId], {
        EDGE_SIGNIN_MQTT_URL: bed.broker.url,
        EDGE_SIGNIN_DISPLAY_PORT: "0",
        ...env,
      });
      const running = cli;
      const url = await eventually(
        () => running.stdout(),
        (out) => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1],
      );
      const html = await (
        await fetch(`${url}/devices/${deviceId}${query}`, { headers: { "accept-language": acceptLanguage } })
      ).text();
      running.child.kill("SIGTERM");
      await running.exited;
      return /<html lang="([^"]+)" dir="(ltr|rtl)">/.exec(html)?.slice(1);
    };
    expect(await pageLanguage({}, "", "de-AT,de;q=0.9,en;q=0.8")).toStrictEqual(["de", "ltr"]);
    expect(await pageLanguage({}, "?lang=ar", "de")).toStrictEqual(["ar", "rtl"]);
    expect(await pageLanguage({ EDGE_SIGNIN_DISPLAY_LANGUAGE: "fr" }, "", "de")).toStrictEqual(["fr", "ltr"]);
    expect(await pageLanguage({}, "", "sv-SE")).toStrictEqual(["en", "ltr"]);
  });

  it("rejects a missing device id and several devices on a terminal, one line per problem", async () => {
    const none = await runCli(["display"], { EDGE_SIGNIN_MQTT_URL: bed.broker.url });
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toBe(
      "edge-signin: EDGE_SIGNIN_DISPLAY_DEVICES: expected at least one device id (or --device ID)",
    );
    const two = await runCli(["display", "--device", "a", "--device", "b"], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
    });
    expect(two.code).toBe(2);
    expect(two.stderr.trim()).toBe(
      "edge-signin: --device: the terminal display shows one device (got a, b); use --web for several",
    );
  });
});
