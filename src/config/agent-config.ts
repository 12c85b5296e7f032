import { hostname } from "node:os";
import { decodeSealingKey } from "../crypto/seal.js";
import { decodeWebhookSecret, MIN_SECRET_BYTES } from "../crypto/webhook-secret.js";
import { isLoopbackHost, isSecureEndpoint } from "../http/secure-endpoint.js";
import { readMqtt, readLogLevel, readTopicPrefix, type MqttConfig } from "./common.js";
import { EnvReader, type Env } from "./env.js";
import { sanitiseHostname, type DeviceFlowDialect, type LogLevel } from "./rules.js";
import { ENV_PREFIX } from "./setting.js";
import { SETTING } from "./settings.js";

export interface TokenServiceConfig {
  readonly socketPath: string;
  readonly socketMode: number;
  readonly socketGroup?: number;
  /** Scopes apps may ask for, besides the sign-in's own. */
  readonly scopes: readonly string[];
}

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
  /** The token service for the device's apps (src/tokens/); absent when `TOKEN_SOCKET=off`. */
  readonly tokenService?: TokenServiceConfig;
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

export interface RetryConfig {
  /** First pause after a failure, in ms; doubles on each further failure. */
  readonly initialDelayMs: number;
  /** Longest pause between attempts, in ms. */
  readonly maxDelayMs: number;
}

function readTokenService(read: EnvReader): TokenServiceConfig | undefined {
  const socketPath = read.get(SETTING.TOKEN_SOCKET);
  if (socketPath === "off") return undefined;
  const group = read.get(SETTING.TOKEN_SOCKET_GROUP);
  const mode = Number.parseInt(read.get(SETTING.TOKEN_SOCKET_MODE), 8);
  // Whoever can connect gets the person's access tokens: never every user on the device.
  if (mode & 0o007)
    read.problem(
      `${ENV_PREFIX}TOKEN_SOCKET_MODE: ${read.get(SETTING.TOKEN_SOCKET_MODE)} lets every user on the device ask for the person's tokens; use 0660 (or 0600) and ${ENV_PREFIX}TOKEN_SOCKET_GROUP for the apps' group`,
    );
  return {
    socketPath,
    socketMode: mode,
    ...(group === undefined ? {} : { socketGroup: group }),
    scopes: read.get(SETTING.TOKEN_SCOPES),
  };
}

/**
 * Reads and validates the agent's configuration from the environment.
 * @throws ConfigError naming every variable that is wrong and what it expects.
 */
export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const tenant = read.get(SETTING.TENANT);
  const authorityUrl = read.get(SETTING.AUTHORITY);
  const clientId = read.required(SETTING.CLIENT_ID);
  const scopes = read.get(SETTING.SCOPES);
  const deviceId = read.get(SETTING.DEVICE_ID) ?? sanitiseHostname(hostname());
  const topicPrefix = readTopicPrefix(read);
  const responseTopicPrefix = read.get(SETTING.RESPONSE_TOPIC_PREFIX);
  const mqtt = readMqtt(read, `edge-signin-${deviceId}`);
  const logLevel = readLogLevel(read);
  const verificationUri = read.get(SETTING.VERIFICATION_URI);
  const deviceFlowDialect = read.get(SETTING.DEVICE_FLOW_DIALECT);
  const httpTimeoutMs = read.ms(SETTING.HTTP_TIMEOUT_SECONDS);
  const retryInitial = read.get(SETTING.RETRY_INITIAL_SECONDS);
  const retryMax = read.get(SETTING.RETRY_MAX_SECONDS);
  const healthIntervalMs = read.ms(SETTING.HEALTH_INTERVAL_SECONDS);
  // The backoff doubles from the first pause up to the longest: a first pause past the longest makes no sense.
  if (retryInitial > retryMax)
    read.problem(
      `${ENV_PREFIX}RETRY_INITIAL_SECONDS: ${retryInitial} is longer than ${ENV_PREFIX}RETRY_MAX_SECONDS (${retryMax}${read.raw(SETTING.RETRY_MAX_SECONDS) === undefined ? ", its default" : ""})`,
    );

  const webhookUrl = read.get(SETTING.WEBHOOK_URL);
  const webhookAllowHttp = read.get(SETTING.WEBHOOK_ALLOW_HTTP);
  if (
    webhookUrl &&
    !webhookAllowHttp &&
    !isSecureEndpoint(webhookUrl) &&
    !isLoopbackHost(new URL(webhookUrl).hostname)
  )
    read.problem(
      `${ENV_PREFIX}WEBHOOK_URL: expected an https:// URL (events carry the person's claims); http:// only to loopback, or with ${ENV_PREFIX}WEBHOOK_ALLOW_HTTP=true`,
    );
  const webhookSecret = read.secret(SETTING.WEBHOOK_SECRET);
  if (webhookSecret && !decodeWebhookSecret(webhookSecret))
    read.problem(
      `${ENV_PREFIX}WEBHOOK_SECRET: expected whsec_ and the base64 of at least ${MIN_SECRET_BYTES} random bytes (echo whsec_$(openssl rand -base64 32)); a shorter key can be guessed from one signed request`,
    );
  const webhookTimeoutMs = read.ms(SETTING.WEBHOOK_TIMEOUT_SECONDS);
  const webhookQueueMax = read.get(SETTING.WEBHOOK_QUEUE_MAX);
  if (webhookUrl && !webhookSecret)
    read.problem(
      `${ENV_PREFIX}WEBHOOK_SECRET: is required with ${ENV_PREFIX}WEBHOOK_URL (receivers must be able to verify what they get)`,
    );
  const haPrefix = read.get(SETTING.HA_DISCOVERY_PREFIX);
  if (responseTopicPrefix !== undefined) {
    for (const [name, owned] of [
      ["TOPIC_PREFIX", topicPrefix],
      ["HA_DISCOVERY_PREFIX", haPrefix],
    ] as const) {
      if (overlaps(responseTopicPrefix, owned))
        read.problem(
          `${ENV_PREFIX}RESPONSE_TOPIC_PREFIX: must not overlap ${ENV_PREFIX}${name} (${owned}): responses there could overwrite the agent's own or other devices' topics`,
        );
    }
  }

  if (!tenant && !authorityUrl && !read.raw(SETTING.TENANT) && !read.raw(SETTING.AUTHORITY))
    read.problem(`${ENV_PREFIX}TENANT: expected a tenant subdomain (or set ${ENV_PREFIX}AUTHORITY)`);

  return read.finish<Config>({
    authority: authorityUrl ? withTrailingSlash(authorityUrl) : `https://${tenant ?? ""}.ciamlogin.com/`,
    clientId: clientId ?? "",
    scopes,
    deviceId,
    topicPrefix,
    responseTopicPrefix,
    stateAccount: read.get(SETTING.STATE_ACCOUNT),
    tokenService: readTokenService(read),
    mqtt,
    stateDir: read.get(SETTING.STATE_DIR),
    logLevel,
    verificationUri,
    deviceFlowDialect,
    idpCa: read.pemFile(SETTING.IDP_CA_FILE, "certificates"),
    httpTimeoutMs,
    retry: { initialDelayMs: retryInitial * 1000, maxDelayMs: Math.max(retryMax, retryInitial) * 1000 },
    cacheKey: readCacheKey(read),
    refreshIntervalMs: read.ms(SETTING.REFRESH_INTERVAL_SECONDS),
    idTokenClockToleranceSeconds: read.get(SETTING.ID_TOKEN_CLOCK_TOLERANCE_SECONDS),
    claims: readClaims(read),
    publishIdToken: read.get(SETTING.PUBLISH_ID_TOKEN),
    webhook:
      webhookUrl && webhookSecret
        ? { url: webhookUrl, secret: webhookSecret, timeoutMs: webhookTimeoutMs, queueMax: webhookQueueMax }
        : undefined,
    homeAssistant: { discovery: read.get(SETTING.HA_DISCOVERY), discoveryPrefix: haPrefix },
    healthIntervalMs,
    proxy: readProxy(read),
    outboxMaxEvents: read.get(SETTING.OUTBOX_MAX_EVENTS),
    language: read.get(SETTING.DISPLAY_LANGUAGE),
  });
}

/** The claims that may leave the device; undefined: all of them. */
function readClaims(read: EnvReader): readonly string[] | undefined {
  const names = read.get(SETTING.CLAIMS);
  // "all" (the documented default) is the same as leaving it unset.
  return names?.join() === "all" ? undefined : names;
}

function readCacheKey(read: EnvReader): string | undefined {
  const key = read.secret(SETTING.CACHE_KEY);
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
function readProxy(read: EnvReader): ProxyConfig {
  const value = (name: string) => read.env[name.toLowerCase()] || read.env[name] || undefined;
  const url = (name: string) => {
    const raw = value(name);
    if (raw && !(URL.canParse(raw) && ["http:", "https:"].includes(new URL(raw).protocol))) {
      read.problem(`${name}: expected an http:// or https:// proxy URL`);
      return undefined;
    }
    return raw;
  };
  return { httpsProxy: url("HTTPS_PROXY"), httpProxy: url("HTTP_PROXY"), noProxy: value("NO_PROXY") };
}

/** True when one topic root lies within the other (level by level), so topics under one can be under the other. */
function overlaps(a: string, b: string): boolean {
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(`${outer}/`);
  return within(a, b) || within(b, a);
}

function withTrailingSlash(url: string): string {
  const parsed = new URL(url);
  parsed.search = "";
  parsed.hash = "";
  return parsed.href.endsWith("/") ? parsed.href : `${parsed.href}/`;
}
