import { describe, expect, it } from "vitest";
import { topicMatches } from "../../src/mqtt/gateway.js";

describe("topicMatches (MQTT topic filters, for routing incoming messages)", () => {
  it.each([
    ["edge-signin/tv/request/+", "edge-signin/tv/request/status", true],
    ["edge-signin/tv/request/+", "edge-signin/tv/request", false],
    ["edge-signin/tv/request/+", "edge-signin/tv/request/a/b", false],
    ["edge-signin/tv/request/+", "edge-signin/tv/request/", true],
    ["edge-signin/+/request/+", "edge-signin/other/request/x", true],
    ["edge-signin/#", "edge-signin", true],
    ["edge-signin/#", "edge-signin/tv/request/status", true],
    ["edge-signin/tv/state", "edge-signin/tv/state", true],
    ["edge-signin/tv/state", "edge-signin/tv/states", false],
  ])("%s against %s is %s", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
