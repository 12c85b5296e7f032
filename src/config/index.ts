import { createPrivateKey, X509Certificate } from "node:crypto";
import { hostname } from "node:os";
// zod/mini, not zod's classic API: the same schemas cost ~32 KB of bundle instead of ~450 KB, all of which the
// agent would load and compile before it shows the first code; on small devices that is start time and memory.
import * as z from "zod/mini";
import "../util/zod-messages.js";
import { isSecureEndpoint, SECURE_ENDPOINT_RULE } from "../http/secure-endpoint.js";
import { decodeSealingKey } from "../crypto/seal.js";
import { LOCALES } from "../i18n/catalogue.js";
import { DEFAULT_STATE_DIR } from "../storage/state-dir.js";
import { readStateFileSync, type StateFileRead } from "../storage/state-file.js";

/** Every setting is an environment variable with this prefix: the compose-friendly way. */
export const ENV_PREFIX = "EDGE_SIGNIN_";

export const DEVICE_FLOW_DIALECTS = ["auto", "entra", "rfc8628"] as const;
export type DeviceFlowDialect = (typeof DEVICE_FLOW_DIALECTS)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The validated, frozen settings the agent runs with. */
export interface Config {
  /** `https://{tenant}.ciamlogin.com/` or the AUTHORITY given. Always ends with `/`. */
  readonly authority: string;
  readonly clientId: string;
  /** Extra scopes; MSAL always adds `openid profile offline_access`. */
  readonly scopes: readonly string[];
  readonly deviceId: string;
  readonly topicPrefix: string;
  /** Extra root under which MQTT 5 requests may name their response topic (besides `{base}/response/`). */
  readonly responseTopicPrefix: string | undefined;
  /** Put the signed-in account (name, username) into the retained `state` topic, which displays can read. */
  readonly stateAccount: boolean;
  readonly mqtt: MqttConfig;
  readonly stateDir: string;
  readonly logLevel: LogLevel;
  /** Overrides the URL people are sent to (shown on the display and in the message). */
  readonly verificationUri: string | undefined;
  /** Which dialect of the device flow the provider speaks; `auto` decides by the authority's host. */
  readonly deviceFlowDialect: DeviceFlowDialect;
  /** Extra PEM CA certificates to trust for the identity provider, besides the system's and NODE_EXTRA_CA_CERTS. */
  readonly idpCa: string | undefined;
  /** Timeout of one HTTP request to the identity provider, in ms. */
  readonly httpTimeoutMs: number;
  readonly retry: RetryConfig;
  /** 32-byte key (base64 or hex) sealing `STATE_DIR/token-cache.json` with AES-256-GCM; undefined: plain file. */
  readonly cacheKey: string | undefined;
  /** How often a signed-in agent refreshes its session silently, in ms. */
  readonly refreshIntervalMs: number;
  /** Seconds of clock difference tolerated when checking the ID token's `exp`, `nbf` and `iat`. */
  readonly idTokenClockToleranceSeconds: number;
  /** ID-token claims that may leave the device; undefined means all of them. */
  readonly claims: readonly string[] | undefined;
  /** Put the raw ID token into `authenticated` events (`idToken`), for consumers that verify it themselves. */
  readonly publishIdToken: boolean;
  /** POST every event to this receiver; undefined when `WEBHOOK_URL` is not set. */
  readonly webhook: WebhookConfig | undefined;
  readonly homeAssistant: HomeAssistantConfig;
  /** How often the agent refreshes `STATE_DIR/health.json`, in ms; `edge-signin health` reads it. */
  readonly healthIntervalMs: number;
  /** Proxy to the identity provider, from the standard `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`. */
  readonly proxy: ProxyConfig;
  /** Most unacknowledged MQTT events kept in `STATE_DIR/outbox/`; the oldest are dropped beyond it. */
  readonly outboxMaxEvents: number;
  /** `DISPLAY_LANGUAGE`: the language of the prompt's `message` when the provider sends none (`auto`: English). */
  readonly language: string;
}

/** undici's EnvHttpProxyAgent settings; undefined means "not set" (no proxy, nothing exempt). */
export interface ProxyConfig {
  readonly httpsProxy: string | undefined;
  readonly httpProxy: string | undefined;
  readonly noProxy: string | undefined;
}

export interface WebhookConfig {
  readonly url: string;
  /** HMAC-SHA256 key for the `X-Edge-Signin-Signature` header. */
  readonly secret: string;
  /** Timeout of one delivery, in ms. */
  readonly timeoutMs: number;
  /** Most undelivered events kept in `STATE_DIR/webhook-queue/`; the oldest are dropped beyond it. */
  readonly queueMax: number;
}

export interface HomeAssistantConfig {
  /** Publish retained MQTT discovery configs; when false, remove any this device published before. */
  readonly discovery: boolean;
  readonly discoveryPrefix: string;
}

export interface MqttConfig {
  /**
   * The broker's nodes, tried in this order (the first is the "home" node) and in turn after a node is lost;
   * one URL for a single broker.
   */
  readonly urls: readonly [string, ...string[]];
  readonly clientId: string;
  /** `auto`: MQTT 5, or 3.1.1 when the broker refuses 5; `4` or `5` forces one. */
  readonly protocolVersion: "auto" | 4 | 5;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
}

export interface RetryConfig {
  /** First pause after a failure, in ms; doubles on each further failure. */
  readonly initialDelayMs: number;
  /** Longest pause between attempts, in ms. */
  readonly maxDelayMs: number;
}

/** A configuration problem, reported as one line: `EDGE_SIGNIN_X: what is expected`. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(problems.join("; "));
  }
}

export interface SettingDoc {
  readonly name: string;
  readonly default: string;
  readonly description: string;
  /** Has a `_FILE` variant that reads the value from a file (Docker secrets). */
  readonly fileVariant?: boolean;
}

/**
 * The `EDGE_SIGNIN_*` variables in `env` that are no setting (a misspelt `EDGE_SIGNIN_MQTT_URI`, one from another
 * version), sorted; each is ignored, so the caller warns once, naming them. Variables of the provisioning script
 * (`SECRETS_DIR`, `ACL_FILE`) and of the tests (`TEST_*`) are not counted: a shared `.env` may hold them.
 */
export function unknownSettings(env: Env): string[] {
  const known = new Set(SETTINGS.flatMap((s) => [s.name, ...(s.fileVariant ? [`${s.name}_FILE`] : [])]));
  for (const other of ["SECRETS_DIR", "ACL_FILE"]) known.add(other);
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX))
    .map((name) => name.slice(ENV_PREFIX.length))
    .filter((name) => !known.has(name) && !name.startsWith("TEST_"))
    .map((name) => `${ENV_PREFIX}${name}`)
    .sort();
}

/** One line for unknownSettings(), or undefined when there are none. */
export function unknownSettingsWarning(env: Env): string | undefined {
  const unknown = unknownSettings(env);
  if (unknown.length === 0) return undefined;
  return `ignored ${unknown.length === 1 ? "a variable that is no setting" : `${unknown.length} variables that are no setting`}: ${unknown.join(", ")} (misspelt? the settings are listed in README.md, Configuration, and by edge-signin agent --help)`;
}

/**
 * The documented settings, in the order the README's table shows them. `test/unit/readme.test.ts`
 * keeps the README's configuration table identical to this list.
 */
export const SETTINGS: readonly SettingDoc[] = [
  {
    name: "TENANT",
    default: "",
    description:
      "External ID (CIAM) tenant subdomain: `contoso` means authority `https://contoso.ciamlogin.com/`. One of `TENANT` or `AUTHORITY` is required.",
  },
  {
    name: "AUTHORITY",
    default: "",
    description:
      "Full authority URL (https; http only for a development provider on loopback). Overrides `TENANT`. Entra (`login.microsoftonline.com/...`), or any OpenID provider with the device grant (RFC 8628: Keycloak, Auth0, Okta, ...); see RFC 8628 mode below.",
  },
  {
    name: "CLIENT_ID",
    default: "",
    description: "Application (client) id of the public client registration. Required.",
  },
  {
    name: "SCOPES",
    default: "",
    description:
      "Extra scopes, space or comma separated. `openid profile offline_access` are always requested.",
  },
  {
    name: "DEVICE_ID",
    default: "hostname",
    description:
      "This device's id in topics and events: letters, digits, `-`, `_` (no `.`: NATS refuses it in topics, RabbitMQ turns it into `/`). The default is the hostname with every other character made `-`.",
  },
  {
    name: "TOPIC_PREFIX",
    default: "edge-signin",
    description:
      "First topic level(s); the base topic is `{TOPIC_PREFIX}/{DEVICE_ID}`. Levels of letters, digits, `-`, `_`, separated by `/`.",
  },
  {
    name: "MQTT_URL",
    default: "mqtt://localhost:1883",
    description:
      "Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. For a clustered broker, a comma-separated list of its nodes (`mqtt://node-a:1883,mqtt://node-b:1883`): the first is tried first, the next in turn when a node is lost (see Fleets).",
  },
  {
    name: "RESPONSE_TOPIC_PREFIX",
    default: "",
    description:
      "Topic level(s) under which an MQTT 5 request may name its response topic, e.g. `clients/controller`. Responses otherwise go only to `{base}/response/...`. Must not overlap `TOPIC_PREFIX` or `HA_DISCOVERY_PREFIX`.",
  },
  {
    name: "STATE_ACCOUNT",
    default: "false",
    description:
      "`true` puts the signed-in person's `account` (name, username) into the retained `state` topic, which displays and Home Assistant read; `false` keeps personal data out of it.",
  },
  { name: "MQTT_CLIENT_ID", default: "edge-signin-{DEVICE_ID}", description: "MQTT client id." },
  {
    name: "MQTT_PROTOCOL_VERSION",
    default: "auto",
    description:
      "`auto`: MQTT 5, or MQTT 3.1.1 when the broker refuses 5 (the version in use is logged). `5` or `4` (3.1.1) forces one.",
  },
  { name: "MQTT_USERNAME", default: "", description: "Broker user name." },
  { name: "MQTT_PASSWORD", default: "", description: "Broker password.", fileVariant: true },
  {
    name: "MQTT_CA_FILE",
    default: "",
    description: "PEM file of the CA that signed the broker's certificate (mqtts, wss).",
  },
  { name: "MQTT_CERT_FILE", default: "", description: "PEM client certificate for mutual TLS." },
  { name: "MQTT_KEY_FILE", default: "", description: "PEM private key of the client certificate." },
  {
    name: "STATE_DIR",
    default: DEFAULT_STATE_DIR,
    description:
      "Directory for the agent's own files (token cache, event outbox, the provider's cached metadata), on persistent storage. Created private (0700); the agent refuses to start if others can write it.",
  },
  {
    name: "LOG_LEVEL",
    default: "info",
    description:
      "`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Logs are JSON lines on stdout.",
  },
  {
    name: "VERIFICATION_URI",
    default: "",
    description:
      "URL people are sent to, replacing the provider's. For a CIAM authority the default is `https://{tenant}.ciamlogin.com/common/oauth2/deviceauth` (see below).",
  },
  {
    name: "DEVICE_FLOW_DIALECT",
    default: "auto",
    description:
      "`auto`: Microsoft hosts (Entra, External ID) speak Entra's dialect, any other authority RFC 8628 mode. `entra` or `rfc8628` forces one, e.g. `entra` for a gateway that emulates Entra.",
  },
  {
    name: "IDP_CA_FILE",
    default: "",
    description: "PEM file of extra CAs to trust for the identity provider. `NODE_EXTRA_CA_CERTS` works too.",
  },
  {
    name: "HTTP_TIMEOUT_SECONDS",
    default: "30",
    description: "Timeout of one request to the identity provider.",
  },
  {
    name: "RETRY_INITIAL_SECONDS",
    default: "1",
    description:
      "First pause after a failed attempt (network, server, declined); doubles each time, with jitter.",
  },
  {
    name: "RETRY_MAX_SECONDS",
    default: "300",
    description: "Longest pause between attempts, also between new codes when codes keep expiring unused.",
  },
  {
    name: "CACHE_KEY",
    default: "",
    description:
      "Encrypts the token cache in `STATE_DIR` (AES-256-GCM): 32 random bytes as base64 or hex, e.g. `openssl rand -base64 32`.",
    fileVariant: true,
  },
  {
    name: "REFRESH_INTERVAL_SECONDS",
    default: "86400",
    description:
      "While signed in, refresh the session silently this often, so an idle device stays within the refresh token's inactivity limit.",
  },
  {
    name: "ID_TOKEN_CLOCK_TOLERANCE_SECONDS",
    default: "60",
    description:
      "Clock difference tolerated when checking the ID token's `exp` and `nbf` (the token's signature, `iss` and `aud` are always checked).",
  },
  {
    name: "CLAIMS",
    default: "all",
    description:
      "ID-token claims that leave the device in `authenticated` events, space or comma separated, e.g. `sub,name,preferred_username`.",
  },
  {
    name: "PUBLISH_ID_TOKEN",
    default: "false",
    description:
      "`true` adds the raw ID token (`idToken`) to `authenticated` events, for consumers that verify it themselves. Never logged.",
  },
  {
    name: "WEBHOOK_URL",
    default: "",
    description: "POST every event as signed JSON to this URL (http or https). Needs `WEBHOOK_SECRET`.",
  },
  {
    name: "WEBHOOK_SECRET",
    default: "",
    description: "Key of the HMAC-SHA256 signature in the `X-Edge-Signin-Signature` header.",
    fileVariant: true,
  },
  {
    name: "WEBHOOK_TIMEOUT_SECONDS",
    default: "10",
    description: "Timeout of one webhook delivery; a timeout is retried like a network error.",
  },
  {
    name: "WEBHOOK_QUEUE_MAX",
    default: "10000",
    description:
      "Most undelivered webhook events kept in `STATE_DIR/webhook-queue/` (oldest dropped beyond it, with a warning).",
  },
  {
    name: "HA_DISCOVERY",
    default: "false",
    description:
      "`true` publishes Home Assistant MQTT discovery configs (retained); `false` removes any this device published.",
  },
  {
    name: "HA_DISCOVERY_PREFIX",
    default: "homeassistant",
    description: "Home Assistant's discovery prefix.",
  },
  {
    name: "DISPLAY_DEVICES",
    default: "",
    description:
      "`display` command: ids of the devices to show, space or comma separated (or `--device ID`, repeatable). Required for `display`.",
  },
  {
    name: "DISPLAY_HOST",
    default: "127.0.0.1",
    description:
      "`display --web`: address the web display listens on. Loopback by default; `0.0.0.0` lets a TV on the network (or a container's port mapping) reach it.",
  },
  {
    name: "DISPLAY_PORT",
    default: "8080",
    description: "`display --web`: TCP port of the web display (`0` picks a free one).",
  },
  {
    name: "DISPLAY_ALLOWED_HOSTS",
    default: "",
    description:
      "`display --web`: host names the web display answers to, space or comma separated, besides `localhost`, IP addresses, this machine's name and `DISPLAY_HOST`; any other `Host` gets 403 (DNS rebinding). `*` allows any.",
  },
  {
    name: "DISPLAY_SIGNED_IN_SECONDS",
    default: "10",
    description:
      'Displays: how long the signed-in person\'s name stays on the web display before it turns to a neutral "signed in" screen (`0`: never shown).',
  },
  {
    name: "DISPLAY_SHOW_USERNAME",
    default: "false",
    description:
      "Displays: `true` also shows the username (usually the email address) of who signed in, and the terminal display prints the ID-token claims.",
  },
  {
    name: "DISPLAY_LANGUAGE",
    default: "auto",
    description:
      "Displays' language: `auto` follows each browser's `Accept-Language` (a page's `?lang=` wins), or one of `en`, `de`, `fr`, `es`, `it`, `nl`, `pt`, `pl`, `ja`, `zh-Hans`, `ar` (right to left). Also the agent's `message` for providers that send none.",
  },
  {
    name: "DISPLAY_PRODUCT_NAME",
    default: "",
    description:
      '`display --web`: the product people sign in to, in the header and the headline ("Sign in to ..."); empty: the device id.',
  },
  {
    name: "DISPLAY_LOGO_FILE",
    default: "",
    description: "`display --web`: an SVG, PNG or WebP logo for the header (at most 512 KiB).",
  },
  {
    name: "DISPLAY_BACKGROUND_COLOR",
    default: "#000000",
    description:
      "`display --web`: background colour, `#rrggbb`. With the text and accent colours it must reach WCAG 2.2 AA contrast (4.5:1), or the display does not start.",
  },
  {
    name: "DISPLAY_TEXT_COLOR",
    default: "#ffffff",
    description: "`display --web`: text colour, `#rrggbb`.",
  },
  {
    name: "DISPLAY_ACCENT_COLOR",
    default: "#7fd4ff",
    description: "`display --web`: colour of the address to open, `#rrggbb`.",
  },
  {
    name: "DISPLAY_SHORT_URL",
    default: "",
    description:
      "`display --web`: a short address shown instead of the provider's verification URI (e.g. `example.com/tv`, redirecting to it); the QR code still holds the full one.",
  },
  {
    name: "DISPLAY_NEVER_HEARD_SECONDS",
    default: "30",
    description:
      "Displays: how long without a word from the device before the screen (and a log line) says what to check: the device id, the agent, the broker.",
  },
  {
    name: "OUTBOX_MAX_EVENTS",
    default: "1000",
    description:
      "Most events kept in `STATE_DIR/outbox/` until the broker acknowledges them (oldest dropped beyond it, with a warning).",
  },
  {
    name: "HEALTH_INTERVAL_SECONDS",
    default: "10",
    description:
      "How often the agent refreshes `STATE_DIR/health.json`; `edge-signin health` fails after 3 missed refreshes.",
  },
];

type Env = Readonly<Record<string, string | undefined>>;

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
/** C0 and C1 control characters: no setting needs one, and they forge log lines and break topics and headers. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
/** Longest topic prefix: a topic is at most 65,535 bytes (MQTT 5 1.5.4), and a prefix is a few levels. */
const MAX_TOPIC_PREFIX_BYTES = 256;
/** Largest file a setting may name (a password, a key, a PEM bundle of CAs): far above any, far below memory. */
const MAX_SETTING_FILE_BYTES = 1024 * 1024;
/**
 * Device ids become topic levels and client ids on every broker in README's compatibility table: no `.` (NATS
 * refuses it in MQTT topics, RabbitMQ maps it to `/`), no spaces, no wildcards.
 */
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const DEVICE_ID_RULE =
  "expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')";

const httpsUrl = z
  .string()
  .check(
    z.refine(
      (value) => URL.canParse(value) && new URL(value).protocol === "https:",
      "expected an https:// URL",
    ),
  );

const bool = z.pipe(
  z.enum(["true", "false"], { message: "expected true or false" }),
  z.transform((v) => v === "true"),
);

const claimNames = z
  .pipe(
    z.string(),
    z.transform((v) => v.split(/[\s,]+/).filter(Boolean)),
  )
  .check(
    z.refine((names) => names.length > 0 && names.every((n) => /^[A-Za-z0-9_.:-]+$/.test(n)), {
      message: "expected claim names separated by spaces or commas, e.g. sub,name,preferred_username",
    }),
  );

/** A whole number from 1 to a million: how many events a queue keeps. */
/** Host names (or `*`), space or comma separated, as in a `Host` header without the port. */
const hostList = z
  .pipe(
    z.string(),
    z.transform((v) => v.split(/[\s,]+/).filter(Boolean)),
  )
  .check(
    z.refine(
      (names) =>
        names.every((name) => name === "*" || /^[a-z0-9.-]+$/i.test(name) || /^\[[0-9a-f:.]+\]$/i.test(name)),
      "expected host names (letters, digits, '.', '-') or *, space or comma separated",
    ),
  );

const positiveCount = z.coerce
  .number()
  .check(z.int("expected a whole number"), z.gte(1, "expected at least 1"), z.lte(1_000_000));

const seconds = (min: number, max: number) =>
  z.coerce
    .number({ message: "expected a number of seconds" })
    .check(
      z.refine(
        (value) => Number.isFinite(value) && value >= min && value <= max,
        `expected seconds between ${min} and ${max}`,
      ),
    );

/**
 * Reads and validates the configuration from the environment.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);

  const tenant = read.optional(
    "TENANT",
    z.string().check(z.regex(SUBDOMAIN, "expected the tenant subdomain, e.g. contoso")),
  );
  const authorityUrl = read.optional(
    "AUTHORITY",
    z.string().check(z.refine(isSecureEndpoint, SECURE_ENDPOINT_RULE)),
  );
  const clientId = read.required(
    "CLIENT_ID",
    z.string().check(z.trim(), z.minLength(1, "expected the application (client) id")),
  );
  const scopes = (read.optional("SCOPES", z.string()) ?? "").split(/[\s,]+/).filter(Boolean);
  const deviceId =
    read.optional("DEVICE_ID", z.string().check(z.regex(DEVICE_ID, DEVICE_ID_RULE))) ??
    sanitiseHostname(hostname());
  const topicPrefix = readTopicPrefix(read);
  const responseTopicPrefix = read.optional("RESPONSE_TOPIC_PREFIX", topicLevels);
  const mqtt = readMqtt(read, `edge-signin-${deviceId}`);
  const logLevel = readLogLevel(read);
  const verificationUri = read.optional("VERIFICATION_URI", httpsUrl);
  const deviceFlowDialect =
    read.optional(
      "DEVICE_FLOW_DIALECT",
      z.enum(DEVICE_FLOW_DIALECTS, { message: `expected one of ${DEVICE_FLOW_DIALECTS.join(", ")}` }),
    ) ?? "auto";
  const httpTimeoutSeconds = read.optional("HTTP_TIMEOUT_SECONDS", seconds(1, 600)) ?? 30;
  const retryInitial = read.optional("RETRY_INITIAL_SECONDS", seconds(0.01, 3600)) ?? 1;
  const retryMax = read.optional("RETRY_MAX_SECONDS", seconds(0.01, 86400)) ?? 300;
  const healthInterval = read.optional("HEALTH_INTERVAL_SECONDS", seconds(0.1, 3600)) ?? 10;
  // The backoff doubles from the first pause up to the longest: a first pause past the longest makes no sense.
  if (retryInitial > retryMax)
    problems.push(
      `${ENV_PREFIX}RETRY_INITIAL_SECONDS: ${retryInitial} is longer than ${ENV_PREFIX}RETRY_MAX_SECONDS (${retryMax}${env[`${ENV_PREFIX}RETRY_MAX_SECONDS`] === undefined ? ", its default" : ""})`,
    );

  const webhookUrl = read.optional(
    "WEBHOOK_URL",
    z
      .string()
      .check(
        z.refine(
          (v) => URL.canParse(v) && ["http:", "https:"].includes(new URL(v).protocol),
          "expected an http:// or https:// URL",
        ),
      ),
  );
  const webhookSecret = read.secret("WEBHOOK_SECRET");
  const webhookTimeout = read.optional("WEBHOOK_TIMEOUT_SECONDS", seconds(1, 600)) ?? 10;
  const webhookQueueMax = read.optional("WEBHOOK_QUEUE_MAX", positiveCount) ?? 10_000;
  if (webhookUrl && !webhookSecret)
    problems.push(
      `${ENV_PREFIX}WEBHOOK_SECRET: is required with ${ENV_PREFIX}WEBHOOK_URL (receivers must be able to verify what they get)`,
    );
  const haPrefix =
    read.optional(
      "HA_DISCOVERY_PREFIX",
      z.string().check(
        z.maxLength(MAX_TOPIC_PREFIX_BYTES),
        z.refine(
          (v) => /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(v),
          "expected topic levels without wildcards",
        ),
      ),
    ) ?? "homeassistant";
  if (responseTopicPrefix !== undefined) {
    for (const [name, owned] of [
      ["TOPIC_PREFIX", topicPrefix],
      ["HA_DISCOVERY_PREFIX", haPrefix],
    ] as const) {
      if (overlaps(responseTopicPrefix, owned))
        problems.push(
          `${ENV_PREFIX}RESPONSE_TOPIC_PREFIX: must not overlap ${ENV_PREFIX}${name} (${owned}): responses there could overwrite the agent's own or other devices' topics`,
        );
    }
  }

  if (!tenant && !authorityUrl && !env[`${ENV_PREFIX}TENANT`] && !env[`${ENV_PREFIX}AUTHORITY`])
    problems.push(`${ENV_PREFIX}TENANT: expected a tenant subdomain (or set ${ENV_PREFIX}AUTHORITY)`);

  const config: Config = {
    authority: authorityUrl ? withTrailingSlash(authorityUrl) : `https://${tenant ?? ""}.ciamlogin.com/`,
    clientId: clientId ?? "",
    scopes,
    deviceId,
    topicPrefix,
    responseTopicPrefix,
    stateAccount: read.optional("STATE_ACCOUNT", bool) ?? false,
    mqtt,
    stateDir: read.optional("STATE_DIR", z.string().check(z.minLength(1))) ?? DEFAULT_STATE_DIR,
    logLevel,
    verificationUri,
    deviceFlowDialect,
    idpCa: read.pemFile("IDP_CA_FILE", "certificates"),
    httpTimeoutMs: httpTimeoutSeconds * 1000,
    retry: { initialDelayMs: retryInitial * 1000, maxDelayMs: Math.max(retryMax, retryInitial) * 1000 },
    cacheKey: readCacheKey(read),
    refreshIntervalMs: (read.optional("REFRESH_INTERVAL_SECONDS", seconds(1, 90 * 86400)) ?? 86400) * 1000,
    idTokenClockToleranceSeconds: read.optional("ID_TOKEN_CLOCK_TOLERANCE_SECONDS", seconds(0, 3600)) ?? 60,
    // "all" (the documented default) is the same as leaving it unset.
    claims: ((names) => (names?.join() === "all" ? undefined : names))(read.optional("CLAIMS", claimNames)),
    publishIdToken: read.optional("PUBLISH_ID_TOKEN", bool) ?? false,
    webhook:
      webhookUrl && webhookSecret
        ? {
            url: webhookUrl,
            secret: webhookSecret,
            timeoutMs: webhookTimeout * 1000,
            queueMax: webhookQueueMax,
          }
        : undefined,
    homeAssistant: { discovery: read.optional("HA_DISCOVERY", bool) ?? false, discoveryPrefix: haPrefix },
    healthIntervalMs: healthInterval * 1000,
    proxy: readProxy(env, problems),
    outboxMaxEvents: read.optional("OUTBOX_MAX_EVENTS", positiveCount) ?? 1000,
    language: read.optional("DISPLAY_LANGUAGE", languageTag) ?? "auto",
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

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
 * Reads the `display` command's settings: the agent's MQTT, topic and log settings plus the display's own.
 * TENANT and CLIENT_ID are not needed: a display never talks to the identity provider.
 * @param deviceIds ids given on the command line; they replace `DISPLAY_DEVICES`.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadDisplayConfig(env: Env = process.env, deviceIds: readonly string[] = []): DisplayConfig {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);
  const listed =
    deviceIds.length > 0 ? deviceIds : (read.optional("DISPLAY_DEVICES", z.string()) ?? "").split(/[\s,]+/);
  const devices = [...new Set(listed.filter(Boolean))];
  if (devices.length === 0)
    problems.push(`${ENV_PREFIX}DISPLAY_DEVICES: expected at least one device id (or --device ID)`);
  for (const id of devices) {
    if (!DEVICE_ID.test(id))
      problems.push(`${ENV_PREFIX}DISPLAY_DEVICES: "${id}" is not a device id: ${DEVICE_ID_RULE}`);
  }
  const config: DisplayConfig = {
    deviceIds: devices,
    topicPrefix: readTopicPrefix(read),
    mqtt: readMqtt(read, `edge-signin-display-${sanitiseHostname(hostname())}`),
    ...readWebListen(read),
    logLevel: readLogLevel(read),
    signedInNameMs: (read.optional("DISPLAY_SIGNED_IN_SECONDS", seconds(0, 86400)) ?? 10) * 1000,
    showUsername: read.optional("DISPLAY_SHOW_USERNAME", bool) ?? false,
    language: read.optional("DISPLAY_LANGUAGE", languageTag) ?? "auto",
    productName:
      read.optional("DISPLAY_PRODUCT_NAME", z.string().check(z.trim(), z.maxLength(80))) || undefined,
    logo: readLogo(read, env),
    colors: readColors(read),
    shortUrl: read.optional("DISPLAY_SHORT_URL", z.string().check(z.trim(), z.maxLength(80))) || undefined,
    neverHeardAfterMs: (read.optional("DISPLAY_NEVER_HEARD_SECONDS", seconds(1, 86400)) ?? 30) * 1000,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

const tcpPort = z.coerce
  .number({ message: "expected a TCP port number" })
  .check(
    z.refine((v) => Number.isInteger(v) && v >= 0 && v <= 65535, "expected a TCP port between 0 and 65535"),
  );

/** Where a web page listens and which host names it answers to: the web display's and `fleet --web`'s. */
function readWebListen(read: EnvReader): FleetConfig["web"] {
  return {
    host: read.optional("DISPLAY_HOST", z.string().check(z.trim(), z.minLength(1))) ?? "127.0.0.1",
    port: read.optional("DISPLAY_PORT", tcpPort) ?? 8080,
    allowedHosts: (read.optional("DISPLAY_ALLOWED_HOSTS", hostList) ?? []).map((h) => h.toLowerCase()),
  };
}

/** The `fleet` command's settings: the broker (as a read-only user, `fleet` in docker/mosquitto/acl) and the topics. */
export interface FleetConfig {
  readonly topicPrefix: string;
  readonly mqtt: MqttConfig;
  readonly logLevel: LogLevel;
  /** `fleet --web`: where its page listens, and the host names it answers to (the web display's settings). */
  readonly web: { readonly host: string; readonly port: number; readonly allowedHosts: readonly string[] };
}

/**
 * Reads the `fleet` command's settings: the agent's MQTT, topic and log settings, and for `--web` the web
 * display's DISPLAY_HOST, DISPLAY_PORT and DISPLAY_ALLOWED_HOSTS.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadFleetConfig(env: Env = process.env): FleetConfig {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);
  const config: FleetConfig = {
    topicPrefix: readTopicPrefix(read),
    mqtt: readMqtt(read, `edge-signin-fleet-${sanitiseHostname(hostname())}`),
    logLevel: readLogLevel(read),
    web: readWebListen(read),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

/** The languages the displays and the agent's message speak (src/i18n/catalogue.ts), and `auto`. */
const DISPLAY_LANGUAGES = ["auto", ...LOCALES] as const;
const languageTag = z.enum(DISPLAY_LANGUAGES, {
  message: `expected one of ${DISPLAY_LANGUAGES.join(", ")}`,
});

const LOGO_TYPES: Readonly<Record<string, string>> = {
  svg: "image/svg+xml",
  png: "image/png",
  webp: "image/webp",
};

function readLogo(read: EnvReader, env: Env): DisplayConfig["logo"] {
  const path = env[`${ENV_PREFIX}DISPLAY_LOGO_FILE`];
  if (!path) return undefined;
  const type = LOGO_TYPES[/\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase() ?? ""];
  if (!type) {
    read.problem(`${ENV_PREFIX}DISPLAY_LOGO_FILE: expected an .svg, .png or .webp file (got ${path})`);
    return undefined;
  }
  const file = readStateFileSync(path, 512 * 1024);
  if (file.status === "ok") return { type, body: file.data };
  read.problem(`${ENV_PREFIX}DISPLAY_LOGO_FILE: cannot read file ${path} (${settingFileProblem(file)})`);
  return undefined;
}

const hexColor = z.string().check(z.regex(/^#[0-9a-f]{6}$/i, "expected a colour as #rrggbb"));

/** The three colours, each pair with the background at WCAG 2.2 AA contrast for normal text (1.4.3). */
function readColors(read: EnvReader): DisplayConfig["colors"] {
  const colors = {
    background: read.optional("DISPLAY_BACKGROUND_COLOR", hexColor) ?? "#000000",
    text: read.optional("DISPLAY_TEXT_COLOR", hexColor) ?? "#ffffff",
    accent: read.optional("DISPLAY_ACCENT_COLOR", hexColor) ?? "#7fd4ff",
  };
  for (const [name, color] of [
    ["TEXT", colors.text],
    ["ACCENT", colors.accent],
  ] as const) {
    const ratio = contrastRatio(color, colors.background);
    if (ratio < 4.5)
      read.problem(
        `${ENV_PREFIX}DISPLAY_${name}_COLOR: ${color} on the background ${colors.background} has a contrast of ${ratio.toFixed(2)}:1; WCAG 2.2 AA asks for at least 4.5:1`,
      );
  }
  return colors;
}

/** WCAG 2.2 contrast ratio of two `#rrggbb` colours (relative luminance, sRGB). */
export function contrastRatio(a: string, b: string): number {
  const luminance = (hex: string) => {
    const [r = 0, g = 0, bl = 0] = [1, 3, 5].map((i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}

function readCacheKey(read: EnvReader): string | undefined {
  const key = read.secret("CACHE_KEY");
  if (key !== undefined && !decodeSealingKey(key))
    read.problem(
      `${ENV_PREFIX}CACHE_KEY: expected 32 random bytes as base64 (44 characters) or hex (64), e.g. from openssl rand -base64 32`,
    );
  return key;
}

/**
 * The proxy variables every HTTP client knows, without our prefix; lower case wins, as in curl and undici.
 * A malformed proxy URL is a configuration error here rather than a crash when the first request goes out.
 */
function readProxy(env: Env, problems: string[]): ProxyConfig {
  const value = (name: string) => env[name.toLowerCase()] || env[name] || undefined;
  const url = (name: string) => {
    const raw = value(name);
    if (raw && !(URL.canParse(raw) && ["http:", "https:"].includes(new URL(raw).protocol))) {
      problems.push(`${name}: expected an http:// or https:// proxy URL`);
      return undefined;
    }
    return raw;
  };
  return { httpsProxy: url("HTTPS_PROXY"), httpProxy: url("HTTP_PROXY"), noProxy: value("NO_PROXY") };
}

/**
 * One or more MQTT topic levels the agent builds topics under: no wildcards, no empty levels, not `$`-reserved
 * (`$SYS` is the broker's own), and short.
 */
const topicLevels = z.string().check(
  z.minLength(1),
  z.refine((v) => Buffer.byteLength(v) <= MAX_TOPIC_PREFIX_BYTES, {
    message: `expected at most ${MAX_TOPIC_PREFIX_BYTES} bytes`,
  }),
  z.refine((v) => !v.startsWith("$"), {
    message: "expected a topic not starting with $ (reserved for the broker, e.g. $SYS)",
  }),
  // Levels every broker in README's compatibility table carries as they are: no wildcards, no empty levels,
  // no '.' (NATS refuses it in MQTT topics, RabbitMQ turns it into '/').
  z.refine((v) => v.startsWith("$") || /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(v), {
    message:
      "expected topic levels of letters, digits, '_' or '-' separated by '/' (no wildcards, no empty levels, no '.': NATS refuses it and RabbitMQ turns it into '/')",
  }),
);

function readTopicPrefix(read: EnvReader): string {
  return read.optional("TOPIC_PREFIX", topicLevels) ?? "edge-signin";
}

/** True when one topic root lies within the other (level by level), so topics under one can be under the other. */
function overlaps(a: string, b: string): boolean {
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(`${outer}/`);
  return within(a, b) || within(b, a);
}

function readLogLevel(read: EnvReader): LogLevel {
  return (
    read.optional("LOG_LEVEL", z.enum(LOG_LEVELS, { message: `expected one of ${LOG_LEVELS.join(", ")}` })) ??
    "info"
  );
}

/** The broker settings, shared by the agent and the displays (each with its own default client id). */
function readMqtt(read: EnvReader, defaultClientId: string): MqttConfig {
  const mqtt: MqttConfig = {
    urls: readBrokerUrls(read),
    clientId:
      read.optional("MQTT_CLIENT_ID", z.string().check(z.minLength(1), z.maxLength(256))) ?? defaultClientId,
    protocolVersion: ((value) => (value === "auto" ? value : (Number(value) as 4 | 5)))(
      read.optional(
        "MQTT_PROTOCOL_VERSION",
        z.enum(["auto", "4", "5"], { message: "expected auto, 4 or 5" }),
      ) ?? "auto",
    ),
    username: read.optional("MQTT_USERNAME", z.string()),
    password: read.secret("MQTT_PASSWORD"),
    ca: read.pemFile("MQTT_CA_FILE", "certificates"),
    cert: read.pemFile("MQTT_CERT_FILE", "certificates"),
    key: read.pemFile("MQTT_KEY_FILE", "key"),
  };
  if (mqtt.cert !== undefined && mqtt.key === undefined)
    read.problem(`${ENV_PREFIX}MQTT_KEY_FILE: expected a key file to go with ${ENV_PREFIX}MQTT_CERT_FILE`);
  return mqtt;
}

const BROKER_SCHEMES = ["mqtt:", "mqtts:", "ws:", "wss:"];
/** More nodes than any cluster we know of has; a longer list is a mistake (a pasted file, say). */
const MAX_BROKER_URLS = 32;

/**
 * `MQTT_URL`: one broker URL or a comma-separated list of a cluster's nodes; one problem line per bad entry (its
 * position, never its text: a URL may carry a password).
 */
function readBrokerUrls(read: EnvReader): [string, ...string[]] {
  const raw = read.optional("MQTT_URL", z.string());
  if (raw === undefined) return ["mqtt://localhost:1883"];
  const entries = raw.split(",").map((entry) => entry.trim());
  const name = `${ENV_PREFIX}MQTT_URL`;
  if (entries.length > MAX_BROKER_URLS) {
    read.problem(`${name}: ${entries.length} URLs; at most ${MAX_BROKER_URLS} broker nodes`);
    return ["mqtt://localhost:1883"];
  }
  const urls: string[] = [];
  entries.forEach((entry, index) => {
    const which = entries.length > 1 ? `URL ${index + 1} of ${entries.length}: ` : "";
    if (entry === "") read.problem(`${name}: ${which}empty (a stray comma?)`);
    else if (!URL.canParse(entry) || !BROKER_SCHEMES.includes(new URL(entry).protocol))
      read.problem(`${name}: ${which}expected a URL with scheme mqtt, mqtts, ws or wss`);
    else if (new URL(entry).hostname === "") read.problem(`${name}: ${which}names no host`);
    else if (!decodesUserInfo(new URL(entry)))
      read.problem(`${name}: ${which}user name or password is not valid percent-encoding (write % as %25)`);
    else if (urls.some((url) => sameNode(url, entry)))
      read.problem(`${name}: ${which}repeats an earlier node`);
    else urls.push(entry);
  });
  const [first, ...rest] = urls;
  return first === undefined ? ["mqtt://localhost:1883"] : [first, ...rest];
}

/**
 * Why a file a setting names could not be used, in the words the file system would use where it has one (ENOENT,
 * EISDIR, EACCES), else the state-file reader's (a FIFO or device, a size over the limit).
 */
function settingFileProblem(read: Exclude<StateFileRead, { status: "ok" }>): string {
  if (read.status === "missing") return "ENOENT";
  if (read.problem === "a directory, not a file") return "EISDIR";
  return /^unreadable \((.+)\)$/.exec(read.problem)?.[1] ?? read.problem;
}

/** Whether a URL's user name and password decode (`%ZZ` does not; the broker link decodes them). */
function decodesUserInfo(url: URL): boolean {
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
    return true;
  } catch {
    return false;
  }
}

/** Two URLs of the same node: scheme, host and port alike (a trailing `/` makes no other node). */
function sameNode(a: string, b: string): boolean {
  const key = (url: URL) => `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, "")}`;
  return key(new URL(a)) === key(new URL(b));
}

/** Collects every problem instead of stopping at the first, so one run shows them all. */
class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly problems: string[],
  ) {}

  problem(text: string): void {
    this.problems.push(text);
  }

  /** The variable's text; undefined when unset, empty, or holding a control character (then a problem). */
  private value(name: string): string | undefined {
    const raw = this.env[ENV_PREFIX + name];
    if (raw === undefined || raw === "") return undefined;
    if (CONTROL_CHARACTER.test(raw)) {
      this.problems.push(`${ENV_PREFIX}${name}: contains a control character (newline, tab, escape, ...)`);
      return undefined;
    }
    return raw;
  }

  optional<T>(name: string, schema: z.ZodMiniType<T>): T | undefined {
    const raw = this.value(name);
    if (raw === undefined) return undefined;
    const result = schema.safeParse(raw);
    if (result.success) return result.data;
    this.problems.push(`${ENV_PREFIX}${name}: ${result.error.issues[0]?.message ?? "invalid value"}`);
    return undefined;
  }

  required<T>(name: string, schema: z.ZodMiniType<T>): T | undefined {
    const value = this.optional(name, schema);
    const raw = this.env[ENV_PREFIX + name];
    if (value === undefined && (raw === undefined || raw === ""))
      this.problems.push(`${ENV_PREFIX}${name}: is required`);
    return value;
  }

  /** A secret comes from `NAME` or from the file named by `NAME_FILE` (Docker secrets), never both. */
  secret(name: string): string | undefined {
    const direct = this.value(name);
    const file = this.value(`${name}_FILE`);
    if (direct && file) {
      this.problems.push(
        `${ENV_PREFIX}${name}: set either ${ENV_PREFIX}${name} or ${ENV_PREFIX}${name}_FILE, not both`,
      );
      return undefined;
    }
    if (file) return this.readFile(`${name}_FILE`, file)?.replace(/\r?\n$/, "");
    return direct;
  }

  /**
   * A PEM file of certificates (CA, client certificate) or a private key, read and parsed now: a wrong path, a
   * file with no PEM in it, or a damaged one is a one-line configuration error, not a TLS library's message
   * (or a reconnect loop) later.
   */
  pemFile(name: string, kind: "certificates" | "key"): string | undefined {
    const path = this.value(name);
    if (!path) return undefined;
    const text = this.readFile(name, path);
    if (text === undefined) return undefined;
    const blocks = text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
    const problem =
      blocks.length === 0
        ? "holds no PEM block (-----BEGIN ...-----)"
        : kind === "key"
          ? unusable(() => createPrivateKey(text), "holds no usable unencrypted private key")
          : unusable(() => {
              const certificates = blocks.filter((block) => block.startsWith("-----BEGIN CERTIFICATE-----"));
              if (certificates.length === 0) throw new Error("no certificate");
              for (const block of certificates) new X509Certificate(block);
            }, "holds no usable PEM certificate");
    if (problem) {
      this.problems.push(`${ENV_PREFIX}${name}: ${path} ${problem}`);
      return undefined;
    }
    return text;
  }

  /**
   * A file a setting names (a secret, a PEM file): like a state file, a regular file of bounded size read without
   * blocking, so `/dev/zero`, a FIFO or a huge file is one problem line instead of a start that eats memory or hangs.
   */
  private readFile(name: string, path: string): string | undefined {
    const read = readStateFileSync(path, MAX_SETTING_FILE_BYTES);
    if (read.status === "ok") return read.data.toString("utf8");
    this.problems.push(`${ENV_PREFIX}${name}: cannot read file ${path} (${settingFileProblem(read)})`);
    return undefined;
  }
}

/** `problem` when `parse` throws, else undefined. */
function unusable(parse: () => unknown, problem: string): string | undefined {
  try {
    parse();
    return undefined;
  } catch {
    return problem;
  }
}

function withTrailingSlash(url: string): string {
  const parsed = new URL(url);
  parsed.search = "";
  parsed.hash = "";
  return parsed.href.endsWith("/") ? parsed.href : `${parsed.href}/`;
}

/**
 * Hostnames may hold characters a topic level should not (`.` in `tv.local`, which NATS refuses and RabbitMQ
 * turns into a level); keep the id readable and safe on every broker: `tv.local` becomes `tv-local`.
 */
export function sanitiseHostname(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return safe.length > 0 ? safe.slice(0, 128) : "device";
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === "object" && !Object.isFrozen(child)) deepFreeze(child as object);
  }
  return Object.freeze(value);
}
