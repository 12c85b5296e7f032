import { ENV_PREFIX } from "./setting.js";
import { SETTING } from "./settings.js";
import type { EnvReader } from "./env.js";

const BROKER_SCHEMES = ["mqtt:", "mqtts:", "ws:", "wss:"];
/** More nodes than any cluster we know of has; a longer list is a mistake (a pasted file, say). */
const MAX_BROKER_URLS = 32;

/**
 * `MQTT_URL`: one broker URL or a comma-separated list of a cluster's nodes; one problem line per bad entry (its
 * position, never its text: a URL may carry a password).
 */
export function readBrokerUrls(read: EnvReader): [string, ...string[]] {
  const fallback: [string] = [SETTING.MQTT_URL.default];
  const raw = read.get(SETTING.MQTT_URL);
  const entries = raw.split(",").map((entry) => entry.trim());
  const name = `${ENV_PREFIX}MQTT_URL`;
  if (entries.length > MAX_BROKER_URLS) {
    read.problem(`${name}: ${entries.length} URLs; at most ${MAX_BROKER_URLS} broker nodes`);
    return fallback;
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
  return first === undefined ? fallback : [first, ...rest];
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
