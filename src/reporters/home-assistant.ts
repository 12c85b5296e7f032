import { rmSync } from "node:fs";
import { writeFileAtomicSync } from "../storage/atomic-write.js";
import { readStateFileSync } from "../storage/state-file.js";
import type { Logger } from "pino";
import type { HomeAssistantConfig } from "../config.js";
import type { MqttGateway } from "../mqtt/gateway.js";
import type { DeviceTopics } from "../mqtt/topics.js";
import type { Reporter } from "./reporter.js";

/** One Home Assistant entity of this device: its discovery topic and config. */
export interface DiscoveryEntry {
  readonly topic: string;
  readonly config: Readonly<Record<string, unknown>>;
}

/**
 * Home Assistant's MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery): retained
 * configs that make the device appear with a sign-in state sensor, a signed-in user sensor, and sign-in and
 * sign-out buttons wired to the agent's command topics. Switched off, it removes the configs this device
 * published before (empty retained messages), so the entities disappear from Home Assistant too. What it
 * published is noted in `published` (a file in STATE_DIR): a device that never used discovery publishes
 * nothing under the discovery prefix (where a broker ACL may forbid it), and a changed prefix cleans up the old one.
 * It publishes through the MQTT gateway, on every connect, so a broker that lost its retained messages gets them again.
 */
export class HomeAssistantReporter implements Reporter {
  readonly name = "home-assistant";

  constructor(
    private readonly gateway: MqttGateway,
    private readonly entries: readonly DiscoveryEntry[],
    private readonly settings: HomeAssistantConfig,
    private readonly log: Logger,
    /** Where the topics of the configs published last are remembered. */
    private readonly published: string,
    /** This device's id: only its own discovery topics are ever removed, whatever the note lists. */
    private readonly deviceId: string,
  ) {}

  start(): Promise<void> {
    this.gateway.onConnect(() => this.announce());
    if (this.gateway.connected) this.announce();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    // The configs stay: the gateway's `offline` on the availability topic marks the entities unavailable.
    return Promise.resolve();
  }

  private announce(): void {
    try {
      this.announceNow();
    } catch (error) {
      // Runs in the gateway's connect handler: a throw there would take the whole agent down at every start.
      this.log.error({ err: { message: (error as Error).message } }, "Home Assistant discovery failed");
    }
  }

  private announceNow(): void {
    const current = new Set(this.settings.discovery ? this.entries.map((entry) => entry.topic) : []);
    const stale = this.previouslyPublished().filter((topic) => !current.has(topic));
    for (const topic of stale) this.gateway.clearRetained(topic);
    if (stale.length > 0)
      this.log.info({ entities: stale.length }, "Home Assistant discovery configs removed");
    if (this.settings.discovery) {
      for (const entry of this.entries) this.gateway.publishJson(entry.topic, entry.config, { retain: true });
      this.log.debug({ entities: this.entries.length }, "Home Assistant discovery configs published");
    }
    this.remember([...current]);
  }

  private previouslyPublished(): string[] {
    try {
      const read = readStateFileSync(this.published, 256 * 1024);
      if (read.status !== "ok") return [];
      const topics: unknown = JSON.parse(read.data.toString("utf8"));
      if (!Array.isArray(topics)) return [];
      // The note is a file in STATE_DIR: whatever it lists, only this device's own config topics are cleared,
      // never a wildcard (which would crash the publish) or another device's or integration's retained topic.
      const own = topics.filter(
        (t): t is string => typeof t === "string" && isOwnDiscoveryTopic(t, this.deviceId),
      );
      if (own.length !== topics.length)
        this.log.warn(
          { file: this.published, ignored: topics.length - own.length },
          "the note of published discovery configs lists topics that are not this device's; ignoring them",
        );
      return own;
    } catch {
      return []; // Never published (or the note is unreadable): nothing of ours to remove.
    }
  }

  private remember(topics: string[]): void {
    try {
      if (topics.length === 0) rmSync(this.published, { force: true });
      else writeFileAtomicSync(this.published, JSON.stringify(topics), { mode: 0o600 });
    } catch (error) {
      this.log.warn(
        { err: error },
        "cannot note the Home Assistant configs published; they may stay if disabled",
      );
    }
  }
}

export interface DiscoveryDevice {
  readonly deviceId: string;
  readonly topics: DeviceTopics;
  readonly prefix: string;
  readonly version: string;
  /**
   * EDGE_SIGNIN_STATE_ACCOUNT: the retained state names who is signed in, so a "Signed-in user" sensor has
   * something to show. Without it the sensor is not offered (and one published before is removed).
   */
  readonly stateAccount?: boolean;
}

/** The `{component}/{key}` of every entity this agent ever publishes. */
const ENTITY_KEYS = new Set(["sensor/state", "sensor/user", "button/sign_in", "button/sign_out"]);

/** The discovery node id of a device: discovery topic levels and ids allow only [a-zA-Z0-9_-]. */
function discoveryNode(deviceId: string): string {
  return `edge-signin_${deviceId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** True for `{any prefix}/{component}/{this device's node}/{key}/config` of an entity this agent publishes. */
export function isOwnDiscoveryTopic(topic: string, deviceId: string): boolean {
  const match =
    /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*\/(sensor|button)\/([A-Za-z0-9_-]+)\/([a-z_]+)\/config$/.exec(topic);
  return match !== null && match[2] === discoveryNode(deviceId) && ENTITY_KEYS.has(`${match[1]}/${match[3]}`);
}

/** The discovery configs of one device. Pure, so the tests and the README show exactly what is published. */
export function discoveryEntries({
  deviceId,
  topics,
  prefix,
  version,
  stateAccount = false,
}: DiscoveryDevice): DiscoveryEntry[] {
  const node = discoveryNode(deviceId);
  const objectPrefix = node.replace(/-/g, "_").toLowerCase();
  const common = {
    availability_topic: topics.availability,
    payload_available: "online",
    payload_not_available: "offline",
    device: {
      identifiers: [`edge-signin_${deviceId}`],
      name: `edge-signin ${deviceId}`,
      manufacturer: "edge-signin",
      model: "edge-signin agent",
      sw_version: version,
    },
    origin: { name: "edge-signin", sw_version: version },
  };
  const entity = (component: string, key: string, config: Record<string, unknown>): DiscoveryEntry => ({
    topic: `${prefix}/${component}/${node}/${key}/config`,
    config: { ...config, unique_id: `${node}_${key}`, object_id: `${objectPrefix}_${key}`, ...common },
  });
  return [
    entity("sensor", "state", {
      name: "Sign-in state",
      icon: "mdi:account-key",
      state_topic: topics.state,
      value_template: "{{ value_json.state }}",
      json_attributes_topic: topics.state,
      json_attributes_template:
        "{{ {'since': value_json.since, 'expires_at': value_json.expiresAt} | tojson }}",
    }),
    ...(stateAccount
      ? [
          entity("sensor", "user", {
            name: "Signed-in user",
            icon: "mdi:account",
            state_topic: topics.state,
            // Empty while nobody is signed in: the state payload carries `account` only in `signed_in`.
            value_template: "{{ value_json.account.name if value_json.account is defined else '' }}",
          }),
        ]
      : []),
    entity("button", "sign_in", {
      name: "Sign in",
      icon: "mdi:login",
      command_topic: topics.request("sign-in"),
      payload_press: "{}",
    }),
    entity("button", "sign_out", {
      name: "Sign out",
      icon: "mdi:logout",
      command_topic: topics.request("sign-out"),
      payload_press: "{}",
    }),
  ];
}
