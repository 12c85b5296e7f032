// zod/mini, not zod's classic API: the same schemas cost ~32 KB of bundle instead of ~450 KB, all of which the
// agent would load and compile before it shows the first code; on small devices that is start time and memory.
import * as z from "zod/mini";
import "../util/zod-messages.js";
import { isSecureEndpoint, SECURE_ENDPOINT_RULE } from "../http/secure-endpoint.js";
import { LOCALES } from "../i18n/catalogue.js";

/** The rules the settings' text must follow, shared by the declarations in settings.ts. */

export const DEVICE_FLOW_DIALECTS = ["auto", "entra", "rfc8628"] as const;
export type DeviceFlowDialect = (typeof DEVICE_FLOW_DIALECTS)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
/** Longest topic prefix: a topic is at most 65,535 bytes (MQTT 5 1.5.4), and a prefix is a few levels. */
const MAX_TOPIC_PREFIX_BYTES = 256;
/**
 * Device ids become topic levels and client ids on every broker in README's compatibility table: no `.` (NATS
 * refuses it in MQTT topics, RabbitMQ maps it to `/`), no spaces, no wildcards.
 */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const DEVICE_ID_RULE =
  "expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')";

/**
 * Hostnames may hold characters a topic level should not (`.` in `tv.local`, which NATS refuses and RabbitMQ
 * turns into a level); keep the id readable and safe on every broker: `tv.local` becomes `tv-local`.
 */
export function sanitiseHostname(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return safe.length > 0 ? safe.slice(0, 128) : "device";
}

export const text = z.string();
export const nonEmpty = z.string().check(z.minLength(1));
/** An address to listen on: a host name or IP, surrounding spaces dropped. */
export const listenHost = z.string().check(z.trim(), z.minLength(1));
/** Trimmed, at most `max` characters: a short text a display shows. */
export const shortText = (max: number) => z.string().check(z.trim(), z.maxLength(max));

export const tenant = z.string().check(z.regex(SUBDOMAIN, "expected the tenant subdomain, e.g. contoso"));
export const authority = z.string().check(z.refine(isSecureEndpoint, SECURE_ENDPOINT_RULE));
export const clientId = z.string().check(z.trim(), z.minLength(1, "expected the application (client) id"));
export const deviceId = z.string().check(z.regex(DEVICE_ID, DEVICE_ID_RULE));
export const mqttClientId = z.string().check(z.minLength(1), z.maxLength(256));

export const httpsUrl = z
  .string()
  .check(
    z.refine(
      (value) => URL.canParse(value) && new URL(value).protocol === "https:",
      "expected an https:// URL",
    ),
  );

export const httpUrl = z
  .string()
  .check(
    z.refine(
      (v) => URL.canParse(v) && ["http:", "https:"].includes(new URL(v).protocol),
      "expected an http:// or https:// URL",
    ),
  );

export const bool = z.pipe(
  z.enum(["true", "false"], { message: "expected true or false" }),
  z.transform((v) => v === "true"),
);

/** Words separated by spaces or commas (scopes, device ids); none when only separators. */
export const wordList = z.pipe(
  z.string(),
  z.transform((v): readonly string[] => v.split(/[\s,]+/).filter(Boolean)),
);

export const claimNames = z
  .pipe(
    z.string(),
    z.transform((v): readonly string[] => v.split(/[\s,]+/).filter(Boolean)),
  )
  .check(
    z.refine((names) => names.length > 0 && names.every((n) => /^[A-Za-z0-9_.:-]+$/.test(n)), {
      message: "expected claim names separated by spaces or commas, e.g. sub,name,preferred_username",
    }),
  );

/** Host names (or `*`), space or comma separated, as in a `Host` header without the port. */
export const hostList = z
  .pipe(
    z.string(),
    z.transform((v): readonly string[] => v.split(/[\s,]+/).filter(Boolean)),
  )
  .check(
    z.refine(
      (names) =>
        names.every((name) => name === "*" || /^[a-z0-9.-]+$/i.test(name) || /^\[[0-9a-f:.]+\]$/i.test(name)),
      "expected host names (letters, digits, '.', '-') or *, space or comma separated",
    ),
  );

/** A whole number from 1 to a million: how many events a queue keeps. */
export const positiveCount = z.coerce
  .number()
  .check(z.int("expected a whole number"), z.gte(1, "expected at least 1"), z.lte(1_000_000));

export const seconds = (min: number, max: number) =>
  z.coerce
    .number({ message: "expected a number of seconds" })
    .check(
      z.refine(
        (value) => Number.isFinite(value) && value >= min && value <= max,
        `expected seconds between ${min} and ${max}`,
      ),
    );

export const tcpPort = z.coerce
  .number({ message: "expected a TCP port number" })
  .check(
    z.refine((v) => Number.isInteger(v) && v >= 0 && v <= 65535, "expected a TCP port between 0 and 65535"),
  );

export const hexColor = z.string().check(z.regex(/^#[0-9a-f]{6}$/i, "expected a colour as #rrggbb"));

export const logLevel = z.enum(LOG_LEVELS, { message: `expected one of ${LOG_LEVELS.join(", ")}` });

export const deviceFlowDialect = z.enum(DEVICE_FLOW_DIALECTS, {
  message: `expected one of ${DEVICE_FLOW_DIALECTS.join(", ")}`,
});

/** `auto`, or the MQTT protocol level to force: 4 (3.1.1) or 5. */
export const protocolVersion = z.pipe(
  z.enum(["auto", "4", "5"], { message: "expected auto, 4 or 5" }),
  z.transform((value) => (value === "auto" ? value : (Number(value) as 4 | 5))),
);

/** The languages the displays and the agent's message speak (src/i18n/catalogue.ts), and `auto`. */
const DISPLAY_LANGUAGES = ["auto", ...LOCALES] as const;
export const languageTag = z.enum(DISPLAY_LANGUAGES, {
  message: `expected one of ${DISPLAY_LANGUAGES.join(", ")}`,
});

/**
 * One or more MQTT topic levels the agent builds topics under: no wildcards, no empty levels, not `$`-reserved
 * (`$SYS` is the broker's own), and short.
 */
export const topicLevels = z.string().check(
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

/** Home Assistant's discovery prefix: topic levels without wildcards. */
export const discoveryPrefix = z.string().check(
  z.maxLength(MAX_TOPIC_PREFIX_BYTES),
  z.refine((v) => /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(v), "expected topic levels without wildcards"),
);

/** A file mode in octal, as chmod takes it: `0660`. */
export const fileMode = z.string().check(z.regex(/^0?[0-7]{3}$/, "expected an octal file mode, e.g. 0660"));
/** A numeric group id. */
export const groupId = z.pipe(
  z.string().check(z.regex(/^\d{1,10}$/, "expected a numeric group id")),
  z.transform(Number),
);
/** A Unix socket's path, or `off`; sun_path holds at most 107 bytes, and a longer one fails at listen obscurely. */
export const socketPath = z
  .string()
  .check(
    z.refine(
      (value) => value === "off" || (value.startsWith("/") && Buffer.byteLength(value) <= 107),
      "expected an absolute path of at most 107 bytes, or off",
    ),
  );
