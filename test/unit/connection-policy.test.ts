import { describe, expect, it } from "vitest";
import {
  MqttRefusedError,
  judgeConnectionError,
  judgeRefusal,
  versionAfterSilentClose,
  versionForFreshConnection,
  grownConnectTimeout,
} from "../../src/mqtt/connection-policy.js";
import { TAKEOVER_CLOSES, TAKEOVER_WINDOW_MS, TakeoverDetector } from "../../src/mqtt/quirks/takeover.js";
import { publishPacketSize } from "../../src/mqtt/gateway.js";

const settingOf = (step: ReturnType<typeof judgeRefusal>) =>
  step.kind === "fatal"
    ? { kind: step.kind, setting: step.error.setting, exitCode: step.error.exitCode }
    : step;

describe("what a refused CONNACK means", () => {
  it("falls back to 3.1.1 only under auto, and names the setting when a version is forced", () => {
    expect(judgeRefusal(1, "auto", 5)).toStrictEqual({ kind: "downgrade" });
    expect(judgeRefusal(0x84, "auto", 5)).toStrictEqual({ kind: "downgrade" });
    expect(settingOf(judgeRefusal(1, 5, 5))).toStrictEqual({
      kind: "fatal",
      setting: "EDGE_SIGNIN_MQTT_PROTOCOL_VERSION",
      exitCode: 4,
    });
    expect(settingOf(judgeRefusal(1, "auto", 4))).toMatchObject({
      setting: "EDGE_SIGNIN_MQTT_PROTOCOL_VERSION",
    });
  });

  it("retries every refusal that can pass: unavailable, busy, quota, rate, unspecified, another server", () => {
    for (const code of [3, 0x80, 0x81, 0x82, 0x83, 0x88, 0x89, 0x97, 0x9c, 0x9d, 0x9f])
      expect(judgeRefusal(code, "auto", 5), `CONNACK ${code}`).toStrictEqual({ kind: "retry" });
  });

  it("ends only on bad credentials, not authorised, banned (and a refused client id), naming the setting", () => {
    const cases: Array<[number, string]> = [
      [
        4,
        "EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the client certificate, EDGE_SIGNIN_MQTT_CERT_FILE)",
      ],
      [
        5,
        "EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the credentials in EDGE_SIGNIN_MQTT_URL) and the broker's ACL for that user",
      ],
      [
        0x86,
        "EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the client certificate, EDGE_SIGNIN_MQTT_CERT_FILE)",
      ],
      [
        0x87,
        "EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the credentials in EDGE_SIGNIN_MQTT_URL) and the broker's ACL for that user",
      ],
      [0x8a, "EDGE_SIGNIN_MQTT_CLIENT_ID"],
      [2, "EDGE_SIGNIN_MQTT_CLIENT_ID"],
      [0x85, "EDGE_SIGNIN_MQTT_CLIENT_ID"],
    ];
    for (const [code, setting] of cases) {
      const step = judgeRefusal(code, "auto", code < 0x80 ? 4 : 5);
      expect(settingOf(step), `CONNACK ${code}`).toStrictEqual({ kind: "fatal", setting, exitCode: 4 });
      if (step.kind === "fatal") {
        expect(step.error).toBeInstanceOf(MqttRefusedError);
        expect(step.error.message).toContain(setting);
        expect(step.error.message).not.toContain("\n");
      }
    }
  });
});

describe("what a connection error means", () => {
  const error = (code: string) => Object.assign(new Error(`failed: ${code}`), { code });
  it("ends on a client certificate the broker refuses, or a broker certificate we do not trust", () => {
    expect(settingOf(judgeConnectionError(error("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA")))).toMatchObject({
      setting: "EDGE_SIGNIN_MQTT_CERT_FILE",
    });
    expect(settingOf(judgeConnectionError(error("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED")))).toMatchObject(
      {
        setting: "EDGE_SIGNIN_MQTT_CERT_FILE",
      },
    );
    expect(settingOf(judgeConnectionError(error("SELF_SIGNED_CERT_IN_CHAIN")))).toMatchObject({
      setting: "EDGE_SIGNIN_MQTT_CA_FILE",
    });
  });
  it("retries anything else: a broker that is down, a reset, a timeout", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EPIPE"])
      expect(judgeConnectionError(error(code))).toStrictEqual({ kind: "retry" });
  });
});

describe("the version after a close without CONNACK", () => {
  const none = new Set<4 | 5>();
  it("alternates under auto until the node has accepted that version, and never when forced", () => {
    expect(versionAfterSilentClose("auto", 5, none)).toBe(4);
    expect(versionAfterSilentClose("auto", 4, none)).toBe(5);
    expect(versionAfterSilentClose("auto", 4, new Set([4]))).toBe(4);
    expect(versionAfterSilentClose(5, 5, none)).toBe(5);
    expect(versionAfterSilentClose(4, 4, none)).toBe(4);
  });

  it("falls back from 5 again on a node that accepted only 3.1.1 (tried 5 on a fresh connection)", () => {
    expect(versionAfterSilentClose("auto", 5, new Set([4]))).toBe(4);
    expect(versionAfterSilentClose("auto", 5, new Set([5]))).toBe(5);
  });
});

describe("a fresh connection and a connect that timed out", () => {
  it("tries MQTT 5 again under auto on every fresh connection, and keeps a forced version", () => {
    expect(versionForFreshConnection("auto", 4)).toBe(5);
    expect(versionForFreshConnection("auto", 5)).toBe(5);
    expect(versionForFreshConnection(4, 4)).toBe(4);
  });

  it("doubles the connect timeout after a timeout, up to the growth bound", () => {
    const grown: number[] = [];
    let timeout = 10_000;
    for (let i = 0; i < 5; i++) grown.push((timeout = grownConnectTimeout(timeout, 10_000, 8)));
    expect(grown).toStrictEqual([20_000, 40_000, 80_000, 80_000, 80_000]);
  });
});

describe("noticing a client-id conflict on a broker that only closes connections", () => {
  it(`calls it a conflict after ${TAKEOVER_CLOSES} short-lived connections in a row`, () => {
    const detector = new TakeoverDetector();
    const verdicts: boolean[] = [];
    for (let i = 0; i < TAKEOVER_CLOSES; i++) {
      detector.connected(i * 2_000);
      verdicts.push(detector.closed(i * 2_000 + 500));
    }
    expect(verdicts).toStrictEqual([...Array<boolean>(TAKEOVER_CLOSES - 1).fill(false), true]);
  });

  it("starts counting again after a connection that lived long, a forgiven close, or a failed attempt", () => {
    const detector = new TakeoverDetector();
    for (let i = 0; i < TAKEOVER_CLOSES - 1; i++) {
      detector.connected(0);
      detector.closed(100);
    }
    detector.forgive();
    detector.connected(0);
    expect(detector.closed(100)).toBe(false);
    detector.connected(0);
    expect(detector.closed(TAKEOVER_WINDOW_MS)).toBe(false);
    // A close without a connection (the broker was unreachable) says nothing.
    expect(detector.closed(TAKEOVER_WINDOW_MS + 1)).toBe(false);
  });
});

describe("the size of a PUBLISH packet", () => {
  it("counts header, topic, packet id, properties and payload as mqtt.js writes them", () => {
    // 3.1.1: 1 (type) + 1 (length) + 2 + 1 (topic "t") + 2 (packet id) + 2 (payload).
    expect(publishPacketSize("t", "hi", { qos: 1 }, 4)).toBe(9);
    // MQTT 5 adds a property length (1) and the message expiry interval (1 + 4).
    expect(publishPacketSize("t", "hi", { qos: 1, properties: { messageExpiryInterval: 60 } }, 5)).toBe(15);
    expect(publishPacketSize("t", "hi", { qos: 1 }, 5)).toBe(10);
    // A remaining length of 128 or more takes two bytes.
    expect(publishPacketSize("t", "x".repeat(200), { qos: 0 }, 4)).toBe(1 + 2 + 2 + 1 + 200);
  });
});
