import type { IClientPublishOptions } from "mqtt";

/** Pure rules about topics and packets, shared by the gateway, the watchers and their tests. */

/**
 * Why `topic` cannot be published to, or undefined when it can: a wildcard (MQTT 5 3.3.2.1), a NUL (1.5.4: the
 * broker drops the connection, and mqtt.js would resend it after every reconnect), another control character,
 * or more than 65,535 bytes.
 */
export function invalidTopic(topic: string): string | undefined {
  if (topic.length === 0) return "refusing to publish to an empty topic";
  if (/[+#]/.test(topic)) return `refusing to publish to a wildcard topic: ${JSON.stringify(topic)}`;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(topic))
    return `refusing to publish to a topic with a control character: ${JSON.stringify(topic)}`;
  if (Buffer.byteLength(topic) > 65_535) return "refusing to publish to a topic longer than 65,535 bytes";
  return undefined;
}

/**
 * Size in bytes of the PUBLISH packet mqtt.js will write (MQTT 5 section 3.3; 3.1.1 has no properties): fixed
 * header, topic, packet id, the properties we set (message expiry, correlation data) and the payload.
 */
export function publishPacketSize(
  topic: string,
  payload: string | Buffer,
  options: IClientPublishOptions,
  version: 4 | 5,
): number {
  const props = options.properties;
  let propertyBytes = 0;
  if (props?.messageExpiryInterval !== undefined) propertyBytes += 1 + 4;
  if (props?.correlationData !== undefined) propertyBytes += 1 + 2 + props.correlationData.length;
  const v5 = version === 5;
  const remaining =
    2 +
    Buffer.byteLength(topic) +
    ((options.qos ?? 0) > 0 ? 2 : 0) +
    (v5 ? varIntSize(propertyBytes) + propertyBytes : 0) +
    (typeof payload === "string" ? Buffer.byteLength(payload) : payload.length);
  return 1 + varIntSize(remaining) + remaining;
}

function varIntSize(value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
}

/** MQTT topic filter matching: `+` is one level, a trailing `#` any number of levels (also none). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Broker URLs may carry credentials (`mqtt://user:pass@host`); logs must not. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    parsed.username = parsed.username ? "***" : "";
    parsed.password = parsed.password ? "***" : "";
  }
  return parsed.href;
}
