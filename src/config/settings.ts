import { DEFAULT_STATE_DIR } from "../storage/state-dir.js";
import * as rules from "./rules.js";
import { declare, inSeconds, settingDoc, type SettingDoc } from "./setting.js";

/**
 * Every setting, declared once, in the order the README's table shows them. To add one: an entry here (a rule
 * from rules.ts, the default as the value the code uses, the text; `...inSeconds(min, max, default)` for a
 * duration), a read of it in the loader of each command that uses it (`read.get(SETTING.X)`, `read.ms` for
 * seconds, `read.secret` with `fileVariant`), then `npm run docs`. test/unit/readme.test.ts and
 * test/unit/settings-defaults.test.ts hold the README to these entries and the loaders to the README.
 */
export const SETTING = declare({
  TENANT: {
    schema: rules.tenant,
    description:
      "External ID (CIAM) tenant subdomain: `contoso` means authority `https://contoso.ciamlogin.com/`. One of `TENANT` or `AUTHORITY` is required.",
  },
  AUTHORITY: {
    schema: rules.authority,
    description:
      "Full authority URL (https only). Overrides `TENANT`. Entra (`login.microsoftonline.com/...`), External ID (`{tenant}.ciamlogin.com`, or a custom URL domain), or any OpenID provider with the device grant (RFC 8628: Keycloak, Auth0, Okta, ...); see RFC 8628 mode below.",
  },
  CLIENT_ID: {
    schema: rules.clientId,
    description: "Application (client) id of the public client registration. Required.",
  },
  SCOPES: {
    schema: rules.wordList,
    default: [],
    description:
      "Extra scopes, space or comma separated. `openid profile offline_access` are always requested.",
  },
  DEVICE_ID: {
    schema: rules.deviceId,
    defaultRule: "hostname",
    description:
      "This device's id in topics and events: letters, digits, `-`, `_` (no `.`: NATS refuses it in topics, RabbitMQ turns it into `/`). The default is the hostname with every other character made `-`.",
  },
  TOPIC_PREFIX: {
    schema: rules.topicLevels,
    default: "edge-signin",
    description:
      "First topic level(s); the base topic is `{TOPIC_PREFIX}/{DEVICE_ID}`. Levels of letters, digits, `-`, `_`, separated by `/`.",
  },
  MQTT_URL: {
    schema: rules.text,
    default: "mqtt://localhost:1883",
    description:
      "Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. For a clustered broker, a comma-separated list of its nodes (`mqtt://node-a:1883,mqtt://node-b:1883`): the first is tried first, the next in turn when a node is lost (see Fleets).",
  },
  RESPONSE_TOPIC_PREFIX: {
    schema: rules.topicLevels,
    description:
      "Topic level(s) under which an MQTT 5 request may name its response topic, e.g. `clients/controller`. Responses otherwise go only to `{base}/response/...`. Must not overlap `TOPIC_PREFIX` or `HA_DISCOVERY_PREFIX`.",
  },
  TOKEN_SOCKET: {
    schema: rules.socketPath,
    default: "/run/edge-signin/token.sock",
    description:
      "Unix domain socket of the token service, where the device's apps get access tokens for the person signed in (`GET /v1/token?scope=...`; see Apps on the device). `off`: no token service.",
  },
  TOKEN_SOCKET_MODE: {
    schema: rules.fileMode,
    default: "0660",
    description:
      "File mode of the token socket (octal): who may ask for tokens. `0660`: the agent's user and group; a mode that lets every user in is refused.",
  },
  TOKEN_SOCKET_GROUP: {
    schema: rules.groupId,
    description:
      "Numeric group id given to the token socket, so apps running in that group may connect. Unset: the agent's own group.",
  },
  TOKEN_SCOPES: {
    schema: rules.wordList,
    default: [],
    description:
      "Scopes apps may ask for, space or comma separated (for example `api://tv-app/read`), besides the sign-in's own (`SCOPES` and `openid profile offline_access`). Anything else is refused with 403.",
  },
  STATE_ACCOUNT: {
    schema: rules.bool,
    default: false,
    description:
      "`true` puts the signed-in person's `account` (name, username) into the retained `state` topic, which displays and Home Assistant read; `false` keeps personal data out of it.",
  },
  MQTT_CLIENT_ID: {
    schema: rules.mqttClientId,
    defaultRule: "edge-signin-{DEVICE_ID}",
    description: "MQTT client id.",
  },
  MQTT_PROTOCOL_VERSION: {
    schema: rules.protocolVersion,
    default: "auto",
    description:
      "`auto`: MQTT 5, or MQTT 3.1.1 when the broker refuses 5 (the version in use is logged). `5` or `4` (3.1.1) forces one.",
  },
  MQTT_CONNECT_TIMEOUT_SECONDS: {
    ...inSeconds(1, 600, 10),
    description:
      "Seconds one connection attempt waits for the broker's answer (CONNACK; TCP and TLS included). An attempt that times out doubles it for the next, up to 8 times this: a slow link (NB-IoT, GPRS, satellite) connects after a few attempts. A timeout is never taken for a broker that refuses MQTT 5.",
  },
  MQTT_USERNAME: {
    schema: rules.text,
    description: "Broker user name.",
  },
  MQTT_PASSWORD: {
    schema: rules.text,
    fileVariant: true,
    description: "Broker password.",
  },
  MQTT_CA_FILE: {
    schema: rules.text,
    description: "PEM file of the CA that signed the broker's certificate (mqtts, wss).",
  },
  MQTT_CERT_FILE: {
    schema: rules.text,
    description: "PEM client certificate for mutual TLS.",
  },
  MQTT_KEY_FILE: {
    schema: rules.text,
    description: "PEM private key of the client certificate.",
  },
  STATE_DIR: {
    schema: rules.nonEmpty,
    default: DEFAULT_STATE_DIR,
    description:
      "Directory for the agent's own files (token cache, event outbox, the provider's cached metadata), on persistent storage. Created private (0700); the agent refuses to start if others can write it.",
  },
  LOG_LEVEL: {
    schema: rules.logLevel,
    default: "info",
    description:
      "`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Logs are JSON lines on stdout.",
  },
  VERIFICATION_URI: {
    schema: rules.httpsUrl,
    description:
      "URL people are sent to, replacing the provider's. For a CIAM authority the default is `https://{tenant}.ciamlogin.com/common/oauth2/deviceauth` (see below).",
  },
  DEVICE_FLOW_DIALECT: {
    schema: rules.deviceFlowDialect,
    default: "auto",
    description:
      "`auto`: Entra and External ID (known by their host names, or on a custom URL domain by the issuer their discovery document names) speak Entra's dialect, any other authority RFC 8628 mode. `entra` or `rfc8628` forces one, e.g. `entra` for a gateway that emulates Entra.",
  },
  IDP_CA_FILE: {
    schema: rules.text,
    description: "PEM file of extra CAs to trust for the identity provider. `NODE_EXTRA_CA_CERTS` works too.",
  },
  HTTP_TIMEOUT_SECONDS: {
    ...inSeconds(1, 600, 30),
    description: "Timeout of one request to the identity provider.",
  },
  RETRY_INITIAL_SECONDS: {
    ...inSeconds(0.01, 3600, 1),
    description:
      "First pause after a failed attempt (provider unreachable or failing); doubles each time, with jitter. An expired, declined or refused code is replaced at once.",
  },
  RETRY_MAX_SECONDS: {
    ...inSeconds(0.01, 86400, 300),
    description: "Longest pause between attempts while the provider is unreachable or failing.",
  },
  CACHE_KEY: {
    schema: rules.text,
    fileVariant: true,
    description:
      "Encrypts the token cache in `STATE_DIR` (AES-256-GCM): 32 random bytes as base64 or hex, e.g. `openssl rand -base64 32`.",
  },
  REFRESH_INTERVAL_SECONDS: {
    ...inSeconds(1, 90 * 86400, 86400),
    description:
      "While signed in, refresh the session silently this often, so an idle device stays within the refresh token's inactivity limit.",
  },
  ID_TOKEN_CLOCK_TOLERANCE_SECONDS: {
    ...inSeconds(0, 3600, 60),
    description:
      "Clock difference tolerated when checking the ID token's `exp` and `nbf` (the token's signature, `iss` and `aud` are always checked).",
  },
  CLAIMS: {
    schema: rules.claimNames,
    defaultRule: "all",
    description:
      "ID-token claims that leave the device in `authenticated` events, space or comma separated, e.g. `sub,name,preferred_username`.",
  },
  PUBLISH_ID_TOKEN: {
    schema: rules.bool,
    default: false,
    description:
      "`true` adds the raw ID token (`idToken`) to `authenticated` events, for consumers that verify it themselves. Never logged.",
  },
  WEBHOOK_URL: {
    schema: rules.httpUrl,
    description:
      "POST every event as signed JSON to this URL: https, or http to loopback (elsewhere only with `WEBHOOK_ALLOW_HTTP`). Needs `WEBHOOK_SECRET`.",
  },
  WEBHOOK_SECRET: {
    schema: rules.text,
    fileVariant: true,
    description:
      "Key of the Standard Webhooks signature (`webhook-signature` header): `whsec_` and the base64 of 32 or more random bytes (`echo whsec_$(openssl rand -base64 32)`).",
  },
  WEBHOOK_ALLOW_HTTP: {
    schema: rules.bool,
    default: false,
    description:
      "`true` lets `WEBHOOK_URL` be plain `http://` to another host: events (claims, the ID token if published) then cross the network readable by anyone on the path. For a receiver on a network you trust.",
  },
  WEBHOOK_TIMEOUT_SECONDS: {
    ...inSeconds(1, 600, 10),
    description: "Timeout of one webhook delivery; a timeout is retried like a network error.",
  },
  WEBHOOK_QUEUE_MAX: {
    schema: rules.positiveCount,
    default: 10_000,
    description:
      "Most undelivered webhook events kept in `STATE_DIR/webhook-queue/` (oldest dropped beyond it, with a warning).",
  },
  HA_DISCOVERY: {
    schema: rules.bool,
    default: false,
    description:
      "`true` publishes Home Assistant MQTT discovery configs (retained); `false` removes any this device published.",
  },
  HA_DISCOVERY_PREFIX: {
    schema: rules.discoveryPrefix,
    default: "homeassistant",
    description: "Home Assistant's discovery prefix.",
  },
  DISPLAY_DEVICES: {
    schema: rules.wordList,
    default: [],
    description:
      "`display` command: ids of the devices to show, space or comma separated (or `--device ID`, repeatable). Required for `display`.",
  },
  DISPLAY_HOST: {
    schema: rules.listenHost,
    default: "127.0.0.1",
    description:
      "`display --web`: address the web display listens on. Loopback by default; `0.0.0.0` lets a TV on the network (or a container's port mapping) reach it.",
  },
  DISPLAY_PORT: {
    schema: rules.tcpPort,
    default: 8080,
    description: "`display --web`: TCP port of the web display (`0` picks a free one).",
  },
  DISPLAY_ALLOWED_HOSTS: {
    schema: rules.hostList,
    default: [],
    description:
      "`display --web`: host names the web display answers to, space or comma separated, besides `localhost`, IP addresses, this machine's name and `DISPLAY_HOST`; any other `Host` gets 403 (DNS rebinding). `*` allows any.",
  },
  DISPLAY_SIGNED_IN_SECONDS: {
    ...inSeconds(0, 86400, 10),
    description:
      'Displays: how long the signed-in person\'s name stays on the web display before it turns to a neutral "signed in" screen (`0`: never shown).',
  },
  DISPLAY_SHOW_USERNAME: {
    schema: rules.bool,
    default: false,
    description:
      "Displays: `true` also shows the username (usually the email address) of who signed in, and the terminal display prints the ID-token claims.",
  },
  DISPLAY_LANGUAGE: {
    schema: rules.languageTag,
    default: "auto",
    description:
      "Displays' language: `auto` follows each browser's `Accept-Language` (a page's `?lang=` wins), or one of `en`, `de`, `fr`, `es`, `it`, `nl`, `pt`, `pl`, `ja`, `zh-Hans`, `zh-Hant`, `ar` (right to left); the terminal display's `auto` follows `LANG`. Also the agent's `message` for providers that send none.",
  },
  DISPLAY_PRODUCT_NAME: {
    schema: rules.shortText(80),
    description:
      '`display --web`: the product people sign in to, in the header and the headline ("Sign in to ..."); empty: the device id.',
  },
  DISPLAY_LOGO_FILE: {
    schema: rules.text,
    description: "`display --web`: an SVG, PNG or WebP logo for the header (at most 512 KiB).",
  },
  DISPLAY_BACKGROUND_COLOR: {
    schema: rules.hexColor,
    default: "#000000",
    description:
      "`display --web`: background colour, `#rrggbb`. With the text and accent colours it must reach WCAG 2.2 AA contrast (4.5:1), or the display does not start.",
  },
  DISPLAY_TEXT_COLOR: {
    schema: rules.hexColor,
    default: "#ffffff",
    description: "`display --web`: text colour, `#rrggbb`.",
  },
  DISPLAY_ACCENT_COLOR: {
    schema: rules.hexColor,
    default: "#7fd4ff",
    description: "`display --web`: colour of the address to open, `#rrggbb`.",
  },
  DISPLAY_SHORT_URL: {
    schema: rules.shortText(80),
    description:
      "`display --web`: a short address shown instead of the provider's verification URI (e.g. `example.com/tv`, redirecting to it); the QR code still holds the full one.",
  },
  DISPLAY_NEVER_HEARD_SECONDS: {
    ...inSeconds(1, 86400, 30),
    description:
      "Displays: how long without a word from the device before the screen (and a log line) says what to check: the device id, the agent, the broker.",
  },
  OUTBOX_MAX_EVENTS: {
    schema: rules.positiveCount,
    default: 1000,
    description:
      "Most events kept in `STATE_DIR/outbox/` until the broker acknowledges them (oldest dropped beyond it, with a warning).",
  },
  HEALTH_INTERVAL_SECONDS: {
    ...inSeconds(0.1, 3600, 10),
    description:
      "How often the agent refreshes `STATE_DIR/health.json`; `edge-signin health` fails after 3 missed refreshes.",
  },
});

/** The documented settings, as the README's table, `.env.example` and `agent --help` list them. */
export const SETTINGS: readonly SettingDoc[] = Object.values(SETTING).map(settingDoc);
