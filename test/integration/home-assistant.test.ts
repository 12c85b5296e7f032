import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { qrSvg } from "../../src/util/qr.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { useTestBed } from "../helpers/fixture.js";
import { checkDiscoveryConfig } from "../helpers/home-assistant-schema.js";
import { connectProbe, type ReceivedMessage } from "../helpers/mqtt-probe.js";

type DiscoveryConfig = Record<string, unknown> & {
  device: { identifiers: string[]; name: string; manufacturer: string; model: string; sw_version: string };
};

/** Collects the retained discovery configs a fresh subscriber (Home Assistant starting) receives. */
async function retainedConfigs(
  url: string,
  topics: readonly string[],
  under = "ha-test",
): Promise<Map<string, ReceivedMessage>> {
  const ha = await connectProbe(url);
  try {
    await ha.subscribe(`${under}/#`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const configs = new Map<string, ReceivedMessage>();
    for (const topic of topics) {
      const last = ha.all(topic).at(-1);
      if (last && last.retain && last.payload.length > 0) configs.set(topic, last);
    }
    return configs;
  } finally {
    await ha.close();
  }
}

describe("Home Assistant MQTT discovery", () => {
  const { bed, probe, newAgent } = useTestBed();

  it("announces one device with state and user sensors and working sign-in/sign-out buttons, then removes it when switched off", async () => {
    const env = {
      EDGE_SIGNIN_HA_DISCOVERY: "true",
      EDGE_SIGNIN_HA_DISCOVERY_PREFIX: "ha-test",
      EDGE_SIGNIN_STATE_DIR: join(bed.stateDir, "ha"),
      // The "Signed-in user" sensor reads the account from the retained state, which holds it only when asked to.
      EDGE_SIGNIN_STATE_ACCOUNT: "true",
    };
    const config = bed.config(env);
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const agent = newAgent(config);
    await agent.start();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    const node = `edge-signin_${config.deviceId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const expected = [
      `ha-test/button/${node}/sign_in/config`,
      `ha-test/button/${node}/sign_out/config`,
      `ha-test/image/${node}/qr/config`,
      `ha-test/sensor/${node}/code/config`,
      `ha-test/sensor/${node}/code_expires/config`,
      `ha-test/sensor/${node}/state/config`,
      `ha-test/sensor/${node}/user/config`,
    ];
    const configs = await retainedConfigs(bed.broker.url, expected);
    expect([...configs.keys()].sort()).toStrictEqual(expected.sort());
    const parsed = new Map([...configs].map(([topic, m]) => [topic, m.json<DiscoveryConfig>()]));
    const uniqueIds = new Set<unknown>();
    for (const [topic, discovery] of parsed) {
      // Each config as Home Assistant's schema for its entity type checks it (no deprecated or unknown keys).
      expect(checkDiscoveryConfig(topic.split("/")[1] ?? "", discovery)).toStrictEqual([]);
      // What Home Assistant needs to create and group the entities, and to mark them unavailable.
      expect(discovery).not.toHaveProperty("object_id");
      expect(discovery).toMatchObject({
        name: expect.any(String),
        unique_id: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
        default_entity_id: expect.stringMatching(/^(sensor|image|button)\.edge_signin_[a-z0-9_]+$/),
        availability: expect.arrayContaining([
          { topic: topics.availability, payload_available: "online", payload_not_available: "offline" },
        ]),
        device: {
          identifiers: [`edge-signin_${config.deviceId}`],
          name: expect.any(String),
          manufacturer: "edge-signin",
          model: expect.any(String),
          sw_version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        },
      });
      uniqueIds.add(discovery["unique_id"]);
    }
    expect(uniqueIds.size).toBe(7);

    // Home Assistant as a display: the code, its expiry and the QR code, from retained messages.
    const promptTopic = `${topics.base}/home-assistant/prompt`;
    const qrTopic = `${topics.base}/home-assistant/qr`;
    expect(parsed.get(`ha-test/sensor/${node}/code/config`)).toMatchObject({
      state_topic: promptTopic,
      value_template: "{{ value_json.code if value_json.code else None }}",
    });
    expect(parsed.get(`ha-test/sensor/${node}/code_expires/config`)).toMatchObject({
      state_topic: promptTopic,
      device_class: "timestamp",
    });
    expect(parsed.get(`ha-test/image/${node}/qr/config`)).toMatchObject({
      image_topic: qrTopic,
      content_type: "image/svg+xml",
      // Unavailable, not a blank square, while there is no code.
      availability_mode: "all",
      availability: expect.arrayContaining([expect.objectContaining({ topic: promptTopic })]),
    });
    // Empty until the code is there (published on connect), then the code.
    expect(
      (await probe.next(promptTopic, (m) => m.json<{ code: string }>().code !== "")).json(),
    ).toStrictEqual({
      code: display.userCode,
      expires_at: display.expiresAt,
      verification_uri: display.verificationUri,
    });
    const qr = (await probe.next(qrTopic, (m) => m.payload.length > 500)).payload.toString();
    expect(qr).toBe(qrSvg(display.verificationUriComplete ?? display.verificationUri));
    expect(qr).toMatch(/^<svg /);
    expect(parsed.get(`ha-test/sensor/${node}/state/config`)).toMatchObject({
      state_topic: topics.state,
      value_template: "{{ value_json.state }}",
      device_class: "enum",
      options: ["starting", "signed_out", "awaiting_user", "signed_in", "error"],
    });
    // Every attribute template guards the fields a state may lack (expiresAt is only in awaiting_user).
    const attributes = String(
      parsed.get(`ha-test/sensor/${node}/state/config`)?.["json_attributes_template"],
    );
    for (const field of ["expiresAt", "nextCodeAt", "retryAt", "reason", "idle"])
      expect(attributes).toContain(`value_json.${field} if value_json.${field} is defined else none`);
    expect(parsed.get(`ha-test/sensor/${node}/user/config`)).toMatchObject({
      state_topic: topics.state,
      // Home Assistant keeps at most 255 characters of a state; the name is the provider's to choose.
      value_template: expect.stringMatching(
        /value_json\.account\.name\[:255\] if .* value_json\.account\.name is string/,
      ),
    });
    const signInButton = parsed.get(`ha-test/button/${node}/sign_in/config`);
    const signOutButton = parsed.get(`ha-test/button/${node}/sign_out/config`);
    expect(signInButton).toMatchObject({ command_topic: topics.request("sign-in"), payload_press: "{}" });
    expect(signOutButton).toMatchObject({ command_topic: topics.request("sign-out"), payload_press: "{}" });
    // The availability topic the entities follow really says online.
    expect((await probe.next(topics.availability)).payload.toString()).toBe("online");

    // The sensors' source: the state topic carries what the templates read.
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });
    const signedIn = (
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in")
    ).json<StatePayload>();
    expect(signedIn.account?.name).toBe("Alice");
    // Cleared with the prompt: no code, no expiry, a blank image.
    expect((await probe.next(promptTopic)).json()).toStrictEqual({
      code: "",
      expires_at: null,
      verification_uri: "",
    });
    expect((await probe.next(qrTopic)).payload.toString()).toMatch(/^<svg [^>]*width="1" height="1"/);

    // Pressing "Sign out" in Home Assistant publishes payload_press to command_topic.
    await probe.publish(String(signOutButton?.["command_topic"]), String(signOutButton?.["payload_press"]));
    const signedOut = (await probe.next(topics.event("signed_out"))).json<EventPayload<"signed_out">>();
    expect(signedOut.reason).toBe("requested");
    const nextCode = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    // Cancel that code (a plain command), then "Sign in" brings a new one.
    await probe.publish(topics.request("cancel"), "{}");
    await probe.next(topics.display, (m) => m.payload.length === 0);
    await probe.publish(String(signInButton?.["command_topic"]), String(signInButton?.["payload_press"]));
    const fresh = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    expect(fresh.userCode).not.toBe(nextCode.userCode);

    // Switched off, the same device removes its entities (empty retained configs).
    await agent.stop();
    await newAgent(
      bed.config({ ...env, EDGE_SIGNIN_HA_DISCOVERY: "false", EDGE_SIGNIN_DEVICE_ID: config.deviceId }),
    ).start();
    await probe.next(topics.availability, (m) => m.payload.toString() === "online");
    await expect.poll(async () => (await retainedConfigs(bed.broker.url, expected)).size).toBe(0);
    await expect
      .poll(async () => (await retainedConfigs(bed.broker.url, [promptTopic, qrTopic], topics.base)).size)
      .toBe(0);
  });

  it("publishes nothing under the discovery prefix on a device that never used discovery", async () => {
    const ha = await connectProbe(bed.broker.url);
    try {
      await ha.subscribe("homeassistant/#");
      const config = bed.config({ EDGE_SIGNIN_STATE_DIR: join(bed.stateDir, "never") });
      const topics = deviceTopics(config.topicPrefix, config.deviceId);
      await newAgent(config).start();
      await probe.next(topics.display, (m) => m.payload.length > 0);
      const node = `edge-signin_${config.deviceId}`;
      for (const key of [
        "sensor/state",
        "sensor/user",
        "sensor/code",
        "sensor/code_expires",
        "image/qr",
        "button/sign_in",
        "button/sign_out",
      ]) {
        const [component, id] = key.split("/");
        expect(ha.all(`homeassistant/${component}/${node}/${id}/config`)).toStrictEqual([]);
      }
      expect(probe.all(`${topics.base}/home-assistant/prompt`)).toStrictEqual([]);
    } finally {
      await ha.close();
    }
  });
});
