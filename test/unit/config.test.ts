import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  loadConfig,
  sanitiseHostname,
  unknownSettings,
  unknownSettingsWarning,
} from "../../src/config/index.js";
import { generate } from "selfsigned";
import { configProblems } from "../helpers/config.js";

const minimal = {
  EDGE_SIGNIN_TENANT: "contoso",
  EDGE_SIGNIN_CLIENT_ID: "11111111-2222-3333-4444-555555555555",
};

function problemsOf(env: Record<string, string>): readonly string[] {
  return configProblems(() => loadConfig(env));
}

describe("configuration from the environment", () => {
  it("names the EDGE_SIGNIN_ variables that are no setting, and only those", () => {
    expect(
      unknownSettings({
        EDGE_SIGNIN_MQTT_URI: "mqtt://typo",
        EDGE_SIGNIN_MQTT_URL: "mqtt://ok",
        EDGE_SIGNIN_MQTT_PASSWORD_FILE: "/run/secrets/p",
        EDGE_SIGNIN_CLIENT_ID_FILE: "/not/a/file/setting",
        EDGE_SIGNIN_SECRETS_DIR: "docker/secrets",
        EDGE_SIGNIN_TEST_REQUIRE_CONTAINER: "1",
        EDGESIGNIN_OTHER: "x",
        PATH: "/usr/bin",
      }),
    ).toStrictEqual(["EDGE_SIGNIN_CLIENT_ID_FILE", "EDGE_SIGNIN_MQTT_URI"]);
    expect(unknownSettingsWarning({ EDGE_SIGNIN_LOG_LEVEL: "info" })).toBeUndefined();
  });

  it("refuses a token socket that every user may open, or that is no absolute path, one line each", () => {
    for (const mode of ["0666", "0604", "777"])
      expect(problemsOf({ ...minimal, EDGE_SIGNIN_TOKEN_SOCKET_MODE: mode })).toStrictEqual([
        expect.stringMatching(
          /^EDGE_SIGNIN_TOKEN_SOCKET_MODE: \d+ lets every user on the device ask for the person's tokens; /,
        ),
      ]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_TOKEN_SOCKET_MODE: "0600" })).toStrictEqual([]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_TOKEN_SOCKET: "run/token.sock" })).toStrictEqual([
      "EDGE_SIGNIN_TOKEN_SOCKET: expected an absolute path of at most 107 bytes, or off",
    ]);
    expect(loadConfig({ ...minimal, EDGE_SIGNIN_TOKEN_SOCKET: "off" }).tokenService).toBeUndefined();
  });

  it("builds the CIAM authority from the tenant subdomain and fills in defaults", () => {
    const config = loadConfig({ ...minimal, EDGE_SIGNIN_DEVICE_ID: "tv-1" });
    expect(config).toMatchObject({
      authority: "https://contoso.ciamlogin.com/",
      clientId: minimal.EDGE_SIGNIN_CLIENT_ID,
      scopes: [],
      deviceId: "tv-1",
      topicPrefix: "edge-signin",
      stateDir: "./state",
      logLevel: "info",
      httpTimeoutMs: 30_000,
      retry: { initialDelayMs: 1_000, maxDelayMs: 300_000 },
      mqtt: { urls: ["mqtt://localhost:1883"], clientId: "edge-signin-tv-1", protocolVersion: "auto" },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.mqtt)).toBe(true);
  });

  it("defaults the device id to a hostname safe on every broker (no '.': NATS refuses it, RabbitMQ makes it '/')", () => {
    expect(loadConfig(minimal).deviceId).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]*$/);
    expect(sanitiseHostname("living-room.tv.local")).toBe("living-room-tv-local");
    expect(sanitiseHostname("..kiosk 2")).toBe("kiosk-2");
    expect(sanitiseHostname("...")).toBe("device");
  });

  it("refuses a device id or topic prefix some brokers mangle, naming the variable", () => {
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_DEVICE_ID: "living.room",
        EDGE_SIGNIN_TOPIC_PREFIX: "home.signin",
      }),
    ).toStrictEqual([
      "EDGE_SIGNIN_DEVICE_ID: expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')",
      "EDGE_SIGNIN_TOPIC_PREFIX: expected topic levels of letters, digits, '_' or '-' separated by '/' (no wildcards, no empty levels, no '.': NATS refuses it and RabbitMQ turns it into '/')",
    ]);
  });

  it("takes the MQTT protocol version auto (the default), 4 or 5", () => {
    expect(loadConfig({ ...minimal, EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "auto" }).mqtt.protocolVersion).toBe(
      "auto",
    );
    expect(loadConfig({ ...minimal, EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4" }).mqtt.protocolVersion).toBe(4);
    expect(loadConfig({ ...minimal, EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "5" }).mqtt.protocolVersion).toBe(5);
  });

  it("lets AUTHORITY override TENANT and normalises it", () => {
    const config = loadConfig({ ...minimal, EDGE_SIGNIN_AUTHORITY: "https://idp.example.com/realms/home" });
    expect(config.authority).toBe("https://idp.example.com/realms/home/");
  });

  it("splits scopes on spaces and commas", () => {
    expect(
      loadConfig({ ...minimal, EDGE_SIGNIN_SCOPES: "api://x/read, User.Read  email" }).scopes,
    ).toStrictEqual(["api://x/read", "User.Read", "email"]);
  });

  it("names every wrong variable with what it expects", () => {
    expect(
      problemsOf({
        EDGE_SIGNIN_AUTHORITY: "http://insecure.example.com/",
        EDGE_SIGNIN_MQTT_URL: "http://broker:1883",
        EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "3",
        EDGE_SIGNIN_LOG_LEVEL: "loud",
        EDGE_SIGNIN_TOPIC_PREFIX: "home/+/signin",
        EDGE_SIGNIN_DEVICE_ID: "tv 1",
        EDGE_SIGNIN_RETRY_MAX_SECONDS: "soon",
      }),
    ).toStrictEqual([
      "EDGE_SIGNIN_AUTHORITY: expected an https:// URL",
      "EDGE_SIGNIN_CLIENT_ID: is required",
      "EDGE_SIGNIN_DEVICE_ID: expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')",
      "EDGE_SIGNIN_TOPIC_PREFIX: expected topic levels of letters, digits, '_' or '-' separated by '/' (no wildcards, no empty levels, no '.': NATS refuses it and RabbitMQ turns it into '/')",
      "EDGE_SIGNIN_MQTT_URL: expected a URL with scheme mqtt, mqtts, ws or wss",
      "EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: expected auto, 4 or 5",
      "EDGE_SIGNIN_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent",
      "EDGE_SIGNIN_RETRY_MAX_SECONDS: expected a number of seconds",
    ]);
  });

  it("refuses a first retry pause longer than the longest, naming both variables", () => {
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "600" })).toStrictEqual([
      "EDGE_SIGNIN_RETRY_INITIAL_SECONDS: 600 is longer than EDGE_SIGNIN_RETRY_MAX_SECONDS (300, its default)",
    ]);
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "20",
        EDGE_SIGNIN_RETRY_MAX_SECONDS: "10",
      }),
    ).toStrictEqual([
      "EDGE_SIGNIN_RETRY_INITIAL_SECONDS: 20 is longer than EDGE_SIGNIN_RETRY_MAX_SECONDS (10)",
    ]);
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "10",
        EDGE_SIGNIN_RETRY_MAX_SECONDS: "10",
      }),
    ).toStrictEqual([]);
  });

  it("takes a cluster's nodes as a comma-separated URL list, the first (home) node first", () => {
    expect(
      loadConfig({
        ...minimal,
        EDGE_SIGNIN_MQTT_URL: "mqtt://node-a:1883, mqtts://node-b:8883 ,ws://[::1]:9001/mqtt",
      }).mqtt.urls,
    ).toStrictEqual(["mqtt://node-a:1883", "mqtts://node-b:8883", "ws://[::1]:9001/mqtt"]);
  });

  it("names each bad entry of the URL list by its position, never by its text", () => {
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_MQTT_URL:
          "mqtt://node-a:1883,,http://user:hunter2@node-b:1883,node-c,mqtt://node-a:1883/,mqtt:///x",
      }),
    ).toStrictEqual([
      "EDGE_SIGNIN_MQTT_URL: URL 2 of 6: empty (a stray comma?)",
      "EDGE_SIGNIN_MQTT_URL: URL 3 of 6: expected a URL with scheme mqtt, mqtts, ws or wss",
      "EDGE_SIGNIN_MQTT_URL: URL 4 of 6: expected a URL with scheme mqtt, mqtts, ws or wss",
      "EDGE_SIGNIN_MQTT_URL: URL 5 of 6: repeats an earlier node",
      "EDGE_SIGNIN_MQTT_URL: URL 6 of 6: names no host",
    ]);
    expect(
      problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_URL: Array(40).fill("mqtt://n:1883").join(",") }),
    ).toStrictEqual(["EDGE_SIGNIN_MQTT_URL: 40 URLs; at most 32 broker nodes"]);
  });

  it("chooses the device-flow dialect by authority unless told", () => {
    expect(loadConfig(minimal).deviceFlowDialect).toBe("auto");
    expect(loadConfig({ ...minimal, EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "entra" }).deviceFlowDialect).toBe(
      "entra",
    );
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "keycloak" })).toStrictEqual([
      "EDGE_SIGNIN_DEVICE_FLOW_DIALECT: expected one of auto, entra, rfc8628",
    ]);
  });

  it("requires a tenant or an authority", () => {
    expect(problemsOf({ EDGE_SIGNIN_CLIENT_ID: "x" })).toStrictEqual([
      "EDGE_SIGNIN_TENANT: expected a tenant subdomain (or set EDGE_SIGNIN_AUTHORITY)",
    ]);
  });

  it("reads secrets from _FILE variables (Docker secrets) and trims the final newline", () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-signin-config-"));
    writeFileSync(join(dir, "password"), "s3cret\n");
    const config = loadConfig({ ...minimal, EDGE_SIGNIN_MQTT_PASSWORD_FILE: join(dir, "password") });
    expect(config.mqtt.password).toBe("s3cret");
  });

  it("refuses a secret given both ways, and a file that cannot be read", () => {
    expect(
      problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_PASSWORD: "a", EDGE_SIGNIN_MQTT_PASSWORD_FILE: "/x" }),
    ).toStrictEqual([
      "EDGE_SIGNIN_MQTT_PASSWORD: set either EDGE_SIGNIN_MQTT_PASSWORD or EDGE_SIGNIN_MQTT_PASSWORD_FILE, not both",
    ]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_CA_FILE: "/nonexistent/ca.pem" })).toStrictEqual([
      "EDGE_SIGNIN_MQTT_CA_FILE: cannot read file /nonexistent/ca.pem (ENOENT)",
    ]);
  });

  it("reads a file a setting names only if it is a regular file of bounded size: /dev/zero or a FIFO is one line, not a start that eats memory or hangs", () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-signin-config-"));
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_PASSWORD_FILE: "/dev/zero" })).toStrictEqual([
      "EDGE_SIGNIN_MQTT_PASSWORD_FILE: cannot read file /dev/zero (not a regular file (a FIFO, socket or device))",
    ]);
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_MQTT_URL: "mqtts://127.0.0.1:8883",
        EDGE_SIGNIN_MQTT_CA_FILE: fifo,
      }),
    ).toStrictEqual([
      `EDGE_SIGNIN_MQTT_CA_FILE: cannot read file ${fifo} (not a regular file (a FIFO, socket or device))`,
    ]);
  });

  it("names a broker URL whose user name or password is not valid percent-encoding, never echoing it", () => {
    const problems = problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_URL: "mqtt://a:S3cr%ZZt@127.0.0.1:1883" });
    expect(problems).toStrictEqual([
      "EDGE_SIGNIN_MQTT_URL: user name or password is not valid percent-encoding (write % as %25)",
    ]);
  });

  it("says one line for a wrong AUTHORITY or TENANT, not a second one asking for a tenant", () => {
    expect(
      problemsOf({ EDGE_SIGNIN_CLIENT_ID: "c", EDGE_SIGNIN_AUTHORITY: "http://example.com/" }),
    ).toHaveLength(1);
    expect(
      problemsOf({ EDGE_SIGNIN_CLIENT_ID: "c", EDGE_SIGNIN_TENANT: "contoso.onmicrosoft.com" }),
    ).toHaveLength(1);
  });

  it("keeps RESPONSE_TOPIC_PREFIX clear of every topic the agent owns (issue 16, finding 3)", () => {
    const overlap = (name: string, value: string) =>
      `EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: must not overlap EDGE_SIGNIN_${name} (${value}): responses there could overwrite the agent's own or other devices' topics`;
    expect(
      problemsOf({ ...minimal, EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "edge-signin/tv/response" }),
    ).toStrictEqual([overlap("TOPIC_PREFIX", "edge-signin")]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "edge" })).toStrictEqual([]);
    expect(
      problemsOf({
        ...minimal,
        EDGE_SIGNIN_TOPIC_PREFIX: "home/edge-signin",
        EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "home",
      }),
    ).toStrictEqual([overlap("TOPIC_PREFIX", "home/edge-signin")]);
    expect(
      problemsOf({ ...minimal, EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "homeassistant/replies" }),
    ).toStrictEqual([overlap("HA_DISCOVERY_PREFIX", "homeassistant")]);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "$SYS/x" })).toStrictEqual([
      "EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: expected a topic not starting with $ (reserved for the broker, e.g. $SYS)",
    ]);
    expect(
      loadConfig({ ...minimal, EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "clients/controller" }).responseTopicPrefix,
    ).toBe("clients/controller");
  });

  it("wants a key with a client certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-signin-config-"));
    // A real certificate: the file is parsed, so a stub would be refused as not a certificate.
    writeFileSync(join(dir, "cert.pem"), (await generate([{ name: "commonName", value: "tv" }])).cert);
    expect(problemsOf({ ...minimal, EDGE_SIGNIN_MQTT_CERT_FILE: join(dir, "cert.pem") })).toStrictEqual([
      "EDGE_SIGNIN_MQTT_KEY_FILE: expected a key file to go with EDGE_SIGNIN_MQTT_CERT_FILE",
    ]);
  });
});
