import { describe, expect, it } from "vitest";
import { brokerNodes, nextNode, nodeAddress, reconnectDelay } from "../../src/mqtt/broker-nodes.js";

describe("broker nodes of a cluster", () => {
  it("starts every node at the version the setting asks for, none known yet", () => {
    expect(brokerNodes(["mqtt://a:1883", "mqtt://b:1883"], "auto")).toStrictEqual([
      { url: "mqtt://a:1883", version: 5, everConnected: false, accepted: new Set() },
      { url: "mqtt://b:1883", version: 5, everConnected: false, accepted: new Set() },
    ]);
    expect(brokerNodes(["mqtt://a:1883"], 4)).toStrictEqual([
      { url: "mqtt://a:1883", version: 4, everConnected: false, accepted: new Set() },
    ]);
  });

  it("moves round robin, back to the first after the last", () => {
    expect([0, 1, 2].map((index) => nextNode(index, 3))).toStrictEqual([1, 2, 0]);
    expect(nextNode(0, 1)).toBe(0);
  });

  it("gives every node one attempt at the first wait, then doubles per round up to the maximum", () => {
    const reconnect = { initialMs: 1_000, maxMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((failures) => reconnectDelay(failures, 3, reconnect))).toStrictEqual([
      1_000, 1_000, 2_000, 2_000, 2_000, 4_000, 4_000,
    ]);
    // One node: the backoff of a single broker, unchanged.
    expect([1, 2, 3, 4, 5, 6].map((failures) => reconnectDelay(failures, 1, reconnect))).toStrictEqual([
      2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ]);
    expect(reconnectDelay(10_000, 1, reconnect)).toBe(30_000);
  });

  it("sets every part of a node's address, so nothing of the last node's stays", () => {
    expect(nodeAddress("mqtts://node-b.example:8883", true, false)).toStrictEqual({
      protocol: "mqtts",
      host: "node-b.example",
      hostname: "node-b.example",
      port: 8883,
      path: undefined,
      servername: undefined,
      username: undefined,
      password: undefined,
    });
    expect(nodeAddress("wss://[::1]/mqtt?x=1", false, false)).toStrictEqual({
      protocol: "wss",
      host: "::1",
      hostname: "::1",
      port: undefined,
      path: "/mqtt?x=1",
      servername: undefined,
    });
  });

  it("takes a node's credentials from its URL only when the settings give none", () => {
    expect(nodeAddress("mqtt://dev%40x:p%3Ass@a:1883", true, false)).toMatchObject({
      username: "dev@x",
      password: "p:ss",
    });
    expect(nodeAddress("mqtt://dev:pass@a:1883", false, false)).not.toHaveProperty("username");
  });

  it("speaks TLS to every node when a client certificate is set, as mqtt.js does for one URL", () => {
    expect(nodeAddress("mqtt://a:8883", false, true).protocol).toBe("mqtts");
    expect(nodeAddress("ws://a:9001", false, true).protocol).toBe("wss");
  });
});
