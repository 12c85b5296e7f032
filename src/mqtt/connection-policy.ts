import { ENV_PREFIX } from "../config.js";
import { StartupError } from "../startup-error.js";

/**
 * What a broker's refusal or a failed connection means for the next attempt, shared by the agent's gateway and
 * every display's watcher. Pure: no client, no timers, so each rule is a unit test.
 */

/** `auto`: MQTT 5 first, 3.1.1 when the broker refuses 5; `4` or `5` forces one. */
export type ProtocolVersionSetting = "auto" | 4 | 5;

/** Exit code of a process the broker refused for good (README: Exit codes). */
export const BROKER_REFUSED_EXIT_CODE = 4;

/**
 * The broker refused us for a reason retrying cannot fix (bad credentials, not authorised, banned, a certificate it
 * does not trust): the message is one line naming the setting to fix.
 */
export class MqttRefusedError extends StartupError {
  override readonly name = "MqttRefusedError";
  constructor(
    message: string,
    /** The setting to fix, e.g. `EDGE_SIGNIN_MQTT_PASSWORD`. */
    readonly setting: string,
    options?: { cause?: unknown },
  ) {
    super(message, BROKER_REFUSED_EXIT_CODE, options);
  }
}

/** What to do after a refused CONNACK or a failed connection. */
export type NextStep =
  | { readonly kind: "retry" }
  /** Try again at once with MQTT 3.1.1: the broker does not speak 5. */
  | { readonly kind: "downgrade" }
  | { readonly kind: "fatal"; readonly error: MqttRefusedError };

const v = (name: string) => ENV_PREFIX + name;
const CREDENTIALS = `${v("MQTT_USERNAME")} / ${v("MQTT_PASSWORD")} (or the client certificate, ${v("MQTT_CERT_FILE")})`;

const NOT_AUTHORISED = `${v("MQTT_USERNAME")} / ${v("MQTT_PASSWORD")} (or the credentials in ${v("MQTT_URL")}) and the broker's ACL for that user`;

/** CONNACK codes of both versions that retrying cannot fix, with the setting a person must change. */
const FATAL_REFUSALS: ReadonlyMap<number, { readonly what: string; readonly setting: string }> = new Map([
  // MQTT 3.1.1 return codes (section 3.2.2.3).
  [4, { what: "bad user name or password", setting: CREDENTIALS }],
  // Mosquitto 2 also answers a wrong password with "not authorised": name the credentials, not the user alone.
  [5, { what: "not authorised", setting: NOT_AUTHORISED }],
  // MQTT 5 reason codes (section 3.2.2.2).
  [0x86, { what: "bad user name or password", setting: CREDENTIALS }],
  [0x87, { what: "not authorised", setting: NOT_AUTHORISED }],
  [0x8a, { what: "banned", setting: v("MQTT_CLIENT_ID") }],
  [0x8c, { what: "bad authentication method", setting: CREDENTIALS }],
]);

/** "Unacceptable protocol version" (3.1.1: 1) and "Unsupported protocol version" (5: 0x84). */
const UNSUPPORTED_VERSION = new Set([1, 0x84]);

/**
 * Node's TLS error codes for a handshake the broker ended because it does not accept our client certificate, and
 * for a broker certificate we do not trust. Both need a setting changed; retrying only floods the broker's log.
 */
const CLIENT_CERT_REFUSED =
  /^ERR_SSL_(TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_BAD_CERTIFICATE|SSLV3_ALERT_CERTIFICATE_UNKNOWN|TLSV13_ALERT_CERTIFICATE_REQUIRED|SSLV3_ALERT_CERTIFICATE_EXPIRED|SSLV3_ALERT_CERTIFICATE_REVOKED|TLSV1_ALERT_ACCESS_DENIED)$/;
const BROKER_CERT_UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Judges a CONNACK that refused the connection.
 * @param code the return code (3.1.1) or reason code (5) mqtt.js reports.
 * @param setting the configured protocol version; `auto` may still fall back to 3.1.1.
 * @param version the version this attempt used.
 */
export function judgeRefusal(code: number, setting: ProtocolVersionSetting, version: 4 | 5): NextStep {
  if (UNSUPPORTED_VERSION.has(code)) {
    if (setting === "auto" && version === 5) return { kind: "downgrade" };
    return fatal(
      `the broker does not speak MQTT ${version === 5 ? "5" : "3.1.1"} (CONNACK ${code}); set ${v("MQTT_PROTOCOL_VERSION")} to auto`,
      v("MQTT_PROTOCOL_VERSION"),
    );
  }
  if (code === 2 || code === 0x85)
    return fatal(
      `the broker refused the client id (CONNACK ${code}); set ${v("MQTT_CLIENT_ID")}`,
      v("MQTT_CLIENT_ID"),
    );
  const refusal = FATAL_REFUSALS.get(code);
  if (refusal)
    return fatal(
      `the broker refused the connection: ${refusal.what} (CONNACK ${code}); check ${refusal.setting}`,
      refusal.setting,
    );
  // Server unavailable, busy, quota or rate exceeded, use another server, unspecified: these pass.
  return { kind: "retry" };
}

/** Judges a connection error that is not a CONNACK (TLS, DNS, refused socket): fatal only for certificates. */
export function judgeConnectionError(error: Error & { code?: unknown }): NextStep {
  const code = typeof error.code === "string" ? error.code : "";
  if (CLIENT_CERT_REFUSED.test(code))
    return fatal(
      `the broker does not accept the client certificate (${code}); check ${v("MQTT_CERT_FILE")} and ${v("MQTT_KEY_FILE")}`,
      v("MQTT_CERT_FILE"),
      error,
    );
  if (BROKER_CERT_UNTRUSTED.has(code))
    return fatal(
      `the broker's certificate is not trusted (${code}: ${error.message}); check ${v("MQTT_CA_FILE")} and ${v("MQTT_URL")}`,
      v("MQTT_CA_FILE"),
      error,
    );
  return { kind: "retry" };
}

/**
 * The version for the next attempt when the socket closed before any CONNACK. Some brokers (RabbitMQ 3.x) answer
 * an MQTT 5 CONNECT by closing the connection: until a version has worked once, `auto` alternates.
 */
export function versionAfterSilentClose(
  setting: ProtocolVersionSetting,
  current: 4 | 5,
  everConnected: boolean,
): 4 | 5 {
  if (setting !== "auto" || everConnected) return current;
  return current === 5 ? 4 : 5;
}

/** MQTT 5 DISCONNECT reason "Session taken over": another client connected with our client id. */
export const SESSION_TAKEN_OVER = 0x8e;

/**
 * Notices a client-id conflict on a 3.1.1 broker, which closes the older connection without saying why: this many
 * connections in a row that the broker closed soon after accepting them.
 */
export const TAKEOVER_CLOSES = 4;
/** A connection that lived at least this long breaks the run: a broker restart now and then is no conflict. */
export const TAKEOVER_WINDOW_MS = 15_000;

/** Counts short-lived connections; `closed()` says when they add up to a client-id conflict. */
export class TakeoverDetector {
  private shortLived = 0;
  private connectedAt: number | undefined;

  connected(now = Date.now()): void {
    this.connectedAt = now;
  }

  /** Call when an accepted connection closed without our asking; true once the run is long enough. */
  closed(now = Date.now()): boolean {
    if (this.connectedAt === undefined) return false;
    const lived = now - this.connectedAt;
    this.connectedAt = undefined;
    this.shortLived = lived < TAKEOVER_WINDOW_MS ? this.shortLived + 1 : 0;
    return this.shortLived >= TAKEOVER_CLOSES;
  }

  /** The last close had another explanation: it does not count. */
  forgive(): void {
    this.shortLived = Math.max(0, this.shortLived - 1);
  }
}

/** The one line that names the conflict and the settings that end it. */
export function takeoverMessage(clientId: string, how: string): string {
  return (
    `another client uses the MQTT client id "${clientId}" (${how}): two agents with the same device id? ` +
    `Give each device its own ${v("DEVICE_ID")} (or ${v("MQTT_CLIENT_ID")}); not reconnecting until restarted`
  );
}

function fatal(message: string, setting: string, cause?: unknown): NextStep {
  return { kind: "fatal", error: new MqttRefusedError(message, setting, cause ? { cause } : undefined) };
}
