import { describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config/index.js";
import { configProblems } from "../helpers/config.js";

function problemsOf(env: Record<string, string>, devices: string[] = []): readonly string[] {
  return configProblems(() => loadDisplayConfig(env, devices));
}

describe("loadDisplayConfig", () => {
  it("needs no tenant or client id, only the devices, and has safe defaults", () => {
    expect(loadDisplayConfig({ EDGE_SIGNIN_DISPLAY_DEVICES: "tv-1, kiosk_2  tv-1" })).toMatchObject({
      deviceIds: ["tv-1", "kiosk_2"],
      topicPrefix: "edge-signin",
      host: "127.0.0.1",
      port: 8080,
      logLevel: "info",
      mqtt: {
        urls: ["mqtt://localhost:1883"],
        protocolVersion: "auto",
        clientId: expect.stringMatching(/^edge-signin-display-/),
      },
    });
  });

  it("takes --device ids over the variable, and the agent's MQTT settings", () => {
    const config = loadDisplayConfig(
      {
        EDGE_SIGNIN_DISPLAY_DEVICES: "ignored",
        EDGE_SIGNIN_MQTT_URL: "mqtts://broker:8883",
        EDGE_SIGNIN_MQTT_USERNAME: "display",
        EDGE_SIGNIN_MQTT_PASSWORD: "secret",
        EDGE_SIGNIN_DISPLAY_HOST: "0.0.0.0",
        EDGE_SIGNIN_DISPLAY_PORT: "0",
      },
      ["living-room"],
    );
    expect(config).toMatchObject({
      deviceIds: ["living-room"],
      host: "0.0.0.0",
      port: 0,
      mqtt: { urls: ["mqtts://broker:8883"], username: "display", password: "secret" },
    });
  });

  it("names every wrong variable", () => {
    expect(
      problemsOf({ EDGE_SIGNIN_DISPLAY_PORT: "80000", EDGE_SIGNIN_MQTT_URL: "http://x" }, ["tv 1", "tv.2"]),
    ).toStrictEqual([
      `EDGE_SIGNIN_DISPLAY_DEVICES: "tv 1" is not a device id: expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')`,
      `EDGE_SIGNIN_DISPLAY_DEVICES: "tv.2" is not a device id: expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')`,
      "EDGE_SIGNIN_MQTT_URL: expected a URL with scheme mqtt, mqtts, ws or wss",
      "EDGE_SIGNIN_DISPLAY_PORT: expected a TCP port between 0 and 65535",
    ]);
    expect(problemsOf({})).toStrictEqual([
      "EDGE_SIGNIN_DISPLAY_DEVICES: expected at least one device id (or --device ID)",
    ]);
  });

  it("reads the presentation settings, with private and readable defaults", () => {
    expect(loadDisplayConfig({}, ["tv"])).toMatchObject({
      allowedHosts: [],
      signedInNameMs: 10_000,
      showUsername: false,
      language: "auto",
      productName: undefined,
      logo: undefined,
      colors: { background: "#000000", text: "#ffffff", accent: "#7fd4ff" },
      shortUrl: undefined,
      neverHeardAfterMs: 30_000,
    });
    expect(
      loadDisplayConfig(
        {
          EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS: "TV.example.org, kiosk.local",
          EDGE_SIGNIN_DISPLAY_SIGNED_IN_SECONDS: "0",
          EDGE_SIGNIN_DISPLAY_LANGUAGE: "zh-Hans",
          EDGE_SIGNIN_DISPLAY_BACKGROUND_COLOR: "#FFFFFF",
          EDGE_SIGNIN_DISPLAY_TEXT_COLOR: "#1a1a1a",
          EDGE_SIGNIN_DISPLAY_ACCENT_COLOR: "#0050b3",
        },
        ["tv"],
      ),
    ).toMatchObject({
      allowedHosts: ["tv.example.org", "kiosk.local"],
      signedInNameMs: 0,
      language: "zh-Hans",
      colors: { background: "#FFFFFF", text: "#1a1a1a", accent: "#0050b3" },
    });
  });

  it("names each presentation setting that is wrong, and colours below WCAG AA contrast", () => {
    expect(
      problemsOf(
        {
          EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS: "tv.example.org evil/path",
          EDGE_SIGNIN_DISPLAY_LANGUAGE: "klingon",
          EDGE_SIGNIN_DISPLAY_ACCENT_COLOR: "#333333",
          EDGE_SIGNIN_DISPLAY_TEXT_COLOR: "white",
          EDGE_SIGNIN_DISPLAY_LOGO_FILE: "/nonexistent/logo.svg",
          EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: "yes",
        },
        ["tv"],
      ),
    ).toStrictEqual([
      "EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS: expected host names (letters, digits, '.', '-') or *, space or comma separated",
      "EDGE_SIGNIN_DISPLAY_SHOW_USERNAME: expected true or false",
      "EDGE_SIGNIN_DISPLAY_LANGUAGE: expected one of auto, en, de, fr, es, it, nl, pt, pl, ja, zh-Hans, zh-Hant, ar",
      "EDGE_SIGNIN_DISPLAY_LOGO_FILE: cannot read file /nonexistent/logo.svg (ENOENT)",
      "EDGE_SIGNIN_DISPLAY_TEXT_COLOR: expected a colour as #rrggbb",
      "EDGE_SIGNIN_DISPLAY_ACCENT_COLOR: #333333 on the background #000000 has a contrast of 1.66:1; WCAG 2.2 AA asks for at least 4.5:1",
    ]);
  });
});
