import { listen } from "../util/emitter.js";
import { rmSync } from "node:fs";
import { writeFileAtomicSync } from "../storage/atomic-write.js";
import { readBoundedFileSync } from "../storage/state-file.js";
import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import type { HomeAssistantConfig } from "../config/index.js";
import { promptQrUrl, qrSvg } from "../util/qr.js";
import { boundedText, MAX_URL_CHARS, MAX_USER_CODE_CHARS } from "../util/bounded.js";
import { AGENT_STATES, type AgentEvents, type SignInPrompt } from "../events.js";
import type { GatewayEvents, MqttGateway } from "../mqtt/gateway.js";
import type { DeviceTopics } from "../mqtt/topics.js";
import { subscribe, type Reporter } from "./reporter.js";

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

  private prompt: SignInPrompt | undefined;
  private unsubscribes: Array<() => void> = [];

  constructor(
    private readonly gateway: MqttGateway,
    private readonly entries: readonly DiscoveryEntry[],
    private readonly settings: HomeAssistantConfig,
    private readonly log: Logger,
    /** Where the topics of the configs published last are remembered. */
    private readonly published: string,
    /** This device's id: only its own discovery topics are ever removed, whatever the note lists. */
    private readonly deviceId: string,
    /** The device's topics: the prompt entities read `{base}/home-assistant/...`. */
    private readonly topics?: DeviceTopics,
  ) {}

  start(events?: EventEmitter<AgentEvents>): Promise<void> {
    this.unsubscribes = [
      listen<GatewayEvents>(this.gateway, {
        connect: () => {
          this.announce();
          this.publishPrompt();
        },
      }),
    ];
    if (events && this.topics && this.settings.discovery) {
      const onError = (error: unknown) =>
        this.log.error({ err: error }, "cannot publish the sign-in prompt to Home Assistant");
      this.unsubscribes.push(
        subscribe(events, "prompt", (prompt) => ((this.prompt = prompt), this.publishPrompt()), onError),
        subscribe(events, "prompt_cleared", () => ((this.prompt = undefined), this.publishPrompt()), onError),
      );
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    // The configs stay: the gateway's `offline` on the availability topic marks the entities unavailable.
    return Promise.resolve();
  }

  /**
   * The prompt as Home Assistant's code, expiry and QR code entities read it; with no prompt, an empty code
   * and no expiry (Home Assistant shows "unknown") and a blank image. Retained, so a restarted Home Assistant
   * shows what is current. Nothing is published while discovery is off.
   */
  private publishPrompt(): void {
    if (!this.topics || !this.settings.discovery || !this.gateway.connected) return;
    const prompt = this.prompt && Date.parse(this.prompt.expiresAt) > Date.now() ? this.prompt : undefined;
    const topics = homeAssistantTopics(this.topics);
    this.gateway.publishJson(
      topics.prompt,
      {
        // Cut as every display cuts them (the provider chose them): Home Assistant shows them as they come.
        code: boundedText(prompt?.userCode ?? "", MAX_USER_CODE_CHARS),
        expires_at: prompt?.expiresAt ?? null,
        verification_uri: boundedText(prompt?.verificationUri ?? "", MAX_URL_CHARS),
      },
      { retain: true, onlyIfConnected: true },
    );
    const qrUrl = prompt && promptQrUrl(prompt);
    this.gateway.publish(topics.qr, (qrUrl && qrSvg(qrUrl)) ?? BLANK_SVG, {
      retain: true,
      onlyIfConnected: true,
    });
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
    // The prompt topics are noted too, so that switching discovery off removes them with the configs.
    const prompt = this.topics ? Object.values(homeAssistantTopics(this.topics)) : [];
    const current = new Set(
      this.settings.discovery ? [...this.entries.map((entry) => entry.topic), ...prompt] : [],
    );
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
      const read = readBoundedFileSync(this.published, 256 * 1024);
      if (read.status !== "ok") return [];
      const topics: unknown = JSON.parse(read.data.toString("utf8"));
      if (!Array.isArray(topics)) return [];
      // The note is a file in STATE_DIR: whatever it lists, only this device's own config topics (and its own
      // prompt topics) are cleared, never a wildcard (which would crash the publish) or another device's or
      // integration's retained topic.
      const ownPromptTopics: string[] = this.topics ? Object.values(homeAssistantTopics(this.topics)) : [];
      const own = topics.filter(
        (t): t is string =>
          typeof t === "string" && (isOwnDiscoveryTopic(t, this.deviceId) || ownPromptTopics.includes(t)),
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

/** A 1x1 white image: what the QR code entity shows when there is no code (an empty message would be ignored). */
const BLANK_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><rect width="1" height="1" fill="#fff"/></svg>';

/** Where the agent publishes the prompt for Home Assistant's entities (retained), under the device's base topic. */
export function homeAssistantTopics(topics: DeviceTopics): { prompt: string; qr: string } {
  return { prompt: `${topics.base}/home-assistant/prompt`, qr: `${topics.base}/home-assistant/qr` };
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

/** The state sensor's attributes: `[attribute, state payload field]`. */
const STATE_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ["since", "since"],
  ["expires_at", "expiresAt"],
  ["next_code_at", "nextCodeAt"],
  ["retry_at", "retryAt"],
  ["reason", "reason"],
  ["idle", "idle"],
];

/** The `{component}/{key}` of every entity this agent ever publishes. */
const ENTITY_KEYS = new Set([
  "sensor/state",
  "sensor/user",
  "sensor/code",
  "sensor/code_expires",
  "image/qr",
  "button/sign_in",
  "button/sign_out",
]);

/** The discovery node id of a device: discovery topic levels and ids allow only [a-zA-Z0-9_-]. */
function discoveryNode(deviceId: string): string {
  return `edge-signin_${deviceId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** True for `{any prefix}/{component}/{this device's node}/{key}/config` of an entity this agent publishes. */
export function isOwnDiscoveryTopic(topic: string, deviceId: string): boolean {
  const match =
    /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*\/(sensor|button|image)\/([A-Za-z0-9_-]+)\/([a-z_]+)\/config$/.exec(
      topic,
    );
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
  const prompt = homeAssistantTopics(topics).prompt;
  /** Available while the agent is online; entities of the prompt (the QR code) also only while there is a code. */
  const deviceOnline = {
    topic: topics.availability,
    payload_available: "online",
    payload_not_available: "offline",
  };
  const common = {
    device: {
      identifiers: [`edge-signin_${deviceId}`],
      name: `edge-signin ${deviceId}`,
      manufacturer: "edge-signin",
      model: "edge-signin agent",
      sw_version: version,
    },
    origin: { name: "edge-signin", sw_version: version },
  };
  const entity = (
    component: string,
    key: string,
    config: Record<string, unknown>,
    availability: ReadonlyArray<Record<string, string>> = [deviceOnline],
  ): DiscoveryEntry => ({
    topic: `${prefix}/${component}/${node}/${key}/config`,
    config: {
      ...config,
      unique_id: `${node}_${key}`,
      // The entity id Home Assistant gives it at first (HA 2025.10 deprecated `object_id` for this).
      default_entity_id: `${component}.${objectPrefix}_${key}`,
      availability: [...availability],
      ...(availability.length > 1 ? { availability_mode: "all" } : {}),
      ...common,
    },
  });
  return [
    entity("sensor", "state", {
      name: "Sign-in state",
      icon: "mdi:account-key",
      state_topic: topics.state,
      // An enum: Home Assistant shows the states as choices (history, automations' pickers), never free text.
      device_class: "enum",
      options: [...AGENT_STATES],
      value_template: "{{ value_json.state }}",
      json_attributes_topic: topics.state,
      // Each field only where the state has it: every state has `since`, only some the others.
      json_attributes_template: `{{ {${STATE_ATTRIBUTES.map(
        ([name, field]) => `'${name}': value_json.${field} if value_json.${field} is defined else none`,
      ).join(", ")}} | tojson }}`,
    }),
    ...(stateAccount
      ? [
          entity("sensor", "user", {
            name: "Signed-in user",
            icon: "mdi:account",
            state_topic: topics.state,
            // Empty while nobody is signed in: the state payload carries `account` only in `signed_in`.
            // A sensor's state holds at most 255 characters: a longer name (it comes from the identity provider)
            // would leave the sensor "unknown", and a name that is no string is none.
            value_template:
              "{{ value_json.account.name[:255] if value_json.account is defined and value_json.account.name is string else '' }}",
          }),
        ]
      : []),
    // The sign-in prompt, so any dashboard or wall panel shows it with no other software (cleared with it).
    entity("sensor", "code", {
      name: "Sign-in code",
      icon: "mdi:form-textbox-password",
      state_topic: homeAssistantTopics(topics).prompt,
      // "None" is Home Assistant's word for unknown: no code now.
      value_template: "{{ value_json.code if value_json.code else None }}",
      json_attributes_topic: homeAssistantTopics(topics).prompt,
      json_attributes_template:
        "{{ {'verification_uri': value_json.verification_uri if value_json.verification_uri is defined else none, 'expires_at': value_json.expires_at if value_json.expires_at is defined else none} | tojson }}",
    }),
    entity("sensor", "code_expires", {
      name: "Sign-in code expires",
      device_class: "timestamp",
      state_topic: homeAssistantTopics(topics).prompt,
      value_template: "{{ value_json.expires_at if value_json.expires_at else None }}",
    }),
    // Unavailable, not a white square, while there is no code.
    entity(
      "image",
      "qr",
      {
        name: "Sign-in QR code",
        image_topic: homeAssistantTopics(topics).qr,
        content_type: "image/svg+xml",
      },
      [
        deviceOnline,
        {
          topic: prompt,
          value_template: "{{ 'online' if value_json.code is defined and value_json.code else 'offline' }}",
          payload_available: "online",
          payload_not_available: "offline",
        },
      ],
    ),
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
