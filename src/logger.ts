import { pino, type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "./config.js";

/**
 * Paths pino censors wherever they appear one or two levels down. The agent never logs these on purpose;
 * this is the net under that rule (an error object from a library, a future careless log line).
 */
export const REDACTED_PATHS = [
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
  "*.password",
  "*.accessToken",
  "*.refreshToken",
  "*.idToken",
  "*.deviceCode",
  "*.access_token",
  "*.refresh_token",
  "*.id_token",
  "*.device_code",
  "*.claims",
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      name: "edge-signin",
      level,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
