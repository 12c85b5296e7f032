import { describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config.js";
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
        url: "mqtt://localhost:1883",
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
      mqtt: { url: "mqtts://broker:8883", username: "display", password: "secret" },
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
});
