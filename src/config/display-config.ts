import { hostname } from "node:os";
import { readBoundedFileSync } from "../storage/state-file.js";
import { readLogLevel, readMqtt, readTopicPrefix, readWebListen, type MqttConfig } from "./common.js";
import { AA_NORMAL_TEXT, contrastRatio } from "./contrast.js";
import { EnvReader, settingFileProblem, type Env } from "./env.js";
import { DEVICE_ID, DEVICE_ID_RULE, sanitiseHostname, type LogLevel } from "./rules.js";
import { ENV_PREFIX } from "./setting.js";
import { SETTING } from "./settings.js";

/** Settings of the `display` command: an MQTT client and a web server, no identity provider. */
export interface DisplayConfig {
  /** The devices to show, each on its own page; at least one. */
  readonly deviceIds: readonly string[];
  readonly topicPrefix: string;
  readonly mqtt: MqttConfig;
  /** Listen address of the web display. */
  readonly host: string;
  /** TCP port of the web display; 0 picks a free one. */
  readonly port: number;
  readonly logLevel: LogLevel;
  /** Host names (lower case) the web server answers to besides loopback names, IPs and its own; `*`: any. */
  readonly allowedHosts: readonly string[];
  /** How long the signed-in name stays on screen, in ms. */
  readonly signedInNameMs: number;
  /** Show the username (usually the email address) of who signed in. */
  readonly showUsername: boolean;
  /** A locale tag or `auto` (each browser's Accept-Language). */
  readonly language: string;
  readonly productName: string | undefined;
  /** The header logo, read at start. */
  readonly logo: { readonly type: string; readonly body: Buffer } | undefined;
  /** `#rrggbb` colours of the web display, checked for WCAG 2.2 AA contrast. */
  readonly colors: { readonly background: string; readonly text: string; readonly accent: string };
  readonly shortUrl: string | undefined;
  /** How long without a word from the device before the display says what to check, in ms. */
  readonly neverHeardAfterMs: number;
}

/**
 * What a display shows when it is built without a DisplayConfig (by a library user, or a test): the settings'
 * defaults, in the units the display code uses.
 */
export const DISPLAY_DEFAULTS = {
  signedInNameMs: SETTING.DISPLAY_SIGNED_IN_SECONDS.default * 1000,
  showUsername: SETTING.DISPLAY_SHOW_USERNAME.default,
  neverHeardAfterMs: SETTING.DISPLAY_NEVER_HEARD_SECONDS.default * 1000,
  colors: {
    background: SETTING.DISPLAY_BACKGROUND_COLOR.default,
    text: SETTING.DISPLAY_TEXT_COLOR.default,
    accent: SETTING.DISPLAY_ACCENT_COLOR.default,
  },
} as const;

/**
 * Reads the `display` command's settings: the agent's MQTT, topic and log settings plus the display's own.
 * TENANT and CLIENT_ID are not needed: a display never talks to the identity provider.
 * @param deviceIds ids given on the command line; they replace `DISPLAY_DEVICES`.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadDisplayConfig(env: Env = process.env, deviceIds: readonly string[] = []): DisplayConfig {
  const read = new EnvReader(env);
  const listed = deviceIds.length > 0 ? deviceIds : read.get(SETTING.DISPLAY_DEVICES);
  const devices = [...new Set(listed.filter(Boolean))];
  if (devices.length === 0)
    read.problem(`${ENV_PREFIX}DISPLAY_DEVICES: expected at least one device id (or --device ID)`);
  for (const id of devices) {
    if (!DEVICE_ID.test(id))
      read.problem(`${ENV_PREFIX}DISPLAY_DEVICES: "${id}" is not a device id: ${DEVICE_ID_RULE}`);
  }
  return read.finish<DisplayConfig>({
    deviceIds: devices,
    topicPrefix: readTopicPrefix(read),
    mqtt: readMqtt(read, `edge-signin-display-${sanitiseHostname(hostname())}`),
    ...readWebListen(read),
    logLevel: readLogLevel(read),
    signedInNameMs: read.ms(SETTING.DISPLAY_SIGNED_IN_SECONDS),
    showUsername: read.get(SETTING.DISPLAY_SHOW_USERNAME),
    language: read.get(SETTING.DISPLAY_LANGUAGE),
    productName: read.get(SETTING.DISPLAY_PRODUCT_NAME) || undefined,
    logo: readLogo(read),
    colors: readColors(read),
    shortUrl: read.get(SETTING.DISPLAY_SHORT_URL) || undefined,
    neverHeardAfterMs: read.ms(SETTING.DISPLAY_NEVER_HEARD_SECONDS),
  });
}

const LOGO_TYPES: Readonly<Record<string, string>> = {
  svg: "image/svg+xml",
  png: "image/png",
  webp: "image/webp",
};

function readLogo(read: EnvReader): DisplayConfig["logo"] {
  const path = read.raw(SETTING.DISPLAY_LOGO_FILE);
  if (!path) return undefined;
  const type = LOGO_TYPES[/\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase() ?? ""];
  if (!type) {
    read.problem(`${ENV_PREFIX}DISPLAY_LOGO_FILE: expected an .svg, .png or .webp file (got ${path})`);
    return undefined;
  }
  const file = readBoundedFileSync(path, 512 * 1024);
  if (file.status === "ok") return { type, body: file.data };
  read.problem(`${ENV_PREFIX}DISPLAY_LOGO_FILE: cannot read file ${path} (${settingFileProblem(file)})`);
  return undefined;
}

/** The three colours, each pair with the background at WCAG 2.2 AA contrast for normal text (1.4.3). */
function readColors(read: EnvReader): DisplayConfig["colors"] {
  const colors = {
    background: read.get(SETTING.DISPLAY_BACKGROUND_COLOR),
    text: read.get(SETTING.DISPLAY_TEXT_COLOR),
    accent: read.get(SETTING.DISPLAY_ACCENT_COLOR),
  };
  for (const [name, color] of [
    ["TEXT", colors.text],
    ["ACCENT", colors.accent],
  ] as const) {
    const ratio = contrastRatio(color, colors.background);
    if (ratio < AA_NORMAL_TEXT)
      read.problem(
        `${ENV_PREFIX}DISPLAY_${name}_COLOR: ${color} on the background ${colors.background} has a contrast of ${ratio.toFixed(2)}:1; WCAG 2.2 AA asks for at least ${AA_NORMAL_TEXT}:1`,
      );
  }
  return colors;
}
