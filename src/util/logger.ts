import { pino, type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "../config/index.js";

/**
 * Keys whose values never reach a log line, wherever they appear at the top of a log object or one level down
 * (an error's fields, a payload). The agent never logs these on purpose; this is the net under that rule (an
 * error object from a library, a future careless log line).
 */
export const SENSITIVE_KEYS: ReadonlySet<string> = new Set([
  "password",
  "accessToken",
  "refreshToken",
  "idToken",
  "deviceCode",
  "access_token",
  "refresh_token",
  "id_token",
  "device_code",
  "claims",
]);

const CENSOR = "[redacted]";

/**
 * Returns the log object with sensitive values censored, copying only what it changes (the caller's objects
 * are never touched). Used instead of pino's `redact` option, whose implementation re-parses every path on
 * every line: about 0.5 ms a line on a small device, several of them between the token response and the
 * `authenticated` event.
 */
export function redactSensitive(object: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let replaced: Map<string, unknown> | undefined;
  for (const key of Object.keys(object)) {
    const value = object[key];
    let replacement = value;
    if (SENSITIVE_KEYS.has(key)) replacement = CENSOR;
    else if (depth === 0 && typeof value === "object" && value !== null && !Array.isArray(value))
      replacement = redactSensitive(value as Record<string, unknown>, 1);
    if (replacement !== value) (replaced ??= new Map()).set(key, replacement);
  }
  return replaced ? copyWith(object, replaced) : object;
}

/**
 * A copy with some fields replaced that keeps the prototype and the non-enumerable fields, so an Error stays
 * an Error with its message and stack (frozen or read-only fields included).
 */
function copyWith(object: object, replaced: ReadonlyMap<string, unknown>): Record<string, unknown> {
  const fields = Object.getOwnPropertyDescriptors(object);
  for (const [key, value] of replaced)
    fields[key] = { value, enumerable: true, writable: true, configurable: true };
  return Object.create(Object.getPrototypeOf(object) as object | null, fields) as Record<string, unknown>;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      name: "edge-signin",
      level,
      formatters: { log: (object) => redactSensitive(object) },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
