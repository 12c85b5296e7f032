import { ENV_PREFIX } from "../config/index.js";
import { StartupError } from "../errors.js";

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
 * The version for the next attempt when the broker closed the connection before any CONNACK (not our own connect
 * timeout: a slow link is no refusal). Some brokers (RabbitMQ 3.x) answer an MQTT 5 CONNECT by closing the
 * connection: `auto` tries the other version, unless the node has accepted a connection with this one before (then
 * the close has another cause).
 */
export function versionAfterSilentClose(
  setting: ProtocolVersionSetting,
  current: 4 | 5,
  accepted: ReadonlySet<4 | 5>,
): 4 | 5 {
  if (setting !== "auto" || accepted.has(current)) return current;
  return current === 5 ? 4 : 5;
}

/**
 * The version a fresh connection (after one that was up was lost) starts with: `auto` tries MQTT 5 again, so a
 * device that fell back to 3.1.1 (a broker upgraded since, or a refusal that passed) gets back to 5; a broker that
 * still refuses it sends it back to 3.1.1 at once.
 */
export function versionForFreshConnection(setting: ProtocolVersionSetting, current: 4 | 5): 4 | 5 {
  return setting === "auto" ? 5 : current;
}

/** The connect timeout for the next attempt after one that timed out, in ms: doubled, up to `growth` times `base`. */
export function grownConnectTimeout(currentMs: number, baseMs: number, growth: number): number {
  return Math.min(currentMs * 2, baseMs * growth);
}

function fatal(message: string, setting: string, cause?: unknown): NextStep {
  return { kind: "fatal", error: new MqttRefusedError(message, setting, cause ? { cause } : undefined) };
}
