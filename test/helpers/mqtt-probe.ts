/**
 * A test-side MQTT client that records everything it receives, so a test can assert on messages that
 * arrived before it started waiting (retained messages, fast publishers) as well as future ones.
 */
import mqtt from "mqtt";
import type { IClientPublishOptions, IPublishPacket } from "mqtt";

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
  properties?: IPublishPacket["properties"];
  json<T = unknown>(): T;
}

export interface MqttProbe {
  /** Subscribe (QoS 1) to a topic filter; returns when the SUBACK arrived. */
  subscribe(filter: string): Promise<void>;
  /**
   * Resolve with the first message (already received and unconsumed, or future) whose topic matches the
   * exact topic and passes the predicate; reject after timeoutMs (default 15000) with an error listing the
   * topics seen. Messages are consumed in order: each topic has a cursor, and a match moves it past the
   * matched message, so messages on that topic which the predicate skipped are consumed too.
   */
  next(
    topic: string,
    predicate?: (m: ReceivedMessage) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedMessage>;
  /** All messages received so far on a topic. */
  all(topic: string): ReceivedMessage[];
  /** Every message received so far, on any topic. */
  everything(): readonly ReceivedMessage[];
  /** Publishes with QoS 1 unless opts say otherwise, so it resolves once the broker has the message. */
  publish(topic: string, payload: string | Buffer, opts?: IClientPublishOptions): Promise<void>;
  close(): Promise<void>;
}

interface Waiter {
  topic: string;
  predicate: (m: ReceivedMessage) => boolean;
  resolve: (m: ReceivedMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 15_000;

export async function connectProbe(
  url: string,
  opts?: { protocolVersion?: 4 | 5; username?: string; password?: string },
): Promise<MqttProbe> {
  const client = await mqtt.connectAsync(
    url,
    {
      protocolVersion: opts?.protocolVersion ?? 5,
      // A broker with users (compose.yaml's): the probe sees only what the user's ACL lets it read.
      ...(opts?.username !== undefined && { username: opts.username, password: opts.password }),
      clientId: `edge-signin-probe-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      // Outage tests stop the broker under the probe; it must come back (mqtt.js resubscribes on
      // reconnect) without the test having to rebuild it.
      reconnectPeriod: 250,
      connectTimeout: 5_000,
    },
    // The first connection must fail fast on a dead broker instead of retrying forever.
    false,
  );

  const received: ReceivedMessage[] = [];
  /** Per topic: index into `received` from which next() may still return messages. */
  const cursors = new Map<string, number>();
  const waiters: Waiter[] = [];
  let closed = false;

  const findFrom = (topic: string, predicate: (m: ReceivedMessage) => boolean): number => {
    for (let i = cursors.get(topic) ?? 0; i < received.length; i++) {
      const m = received[i];
      if (m && m.topic === topic && predicate(m)) return i;
    }
    return -1;
  };

  const describeSeen = (): string => {
    const counts = new Map<string, number>();
    for (const m of received) counts.set(m.topic, (counts.get(m.topic) ?? 0) + 1);
    if (counts.size === 0) return "no messages at all";
    return [...counts].map(([t, n]) => `${t} (${n})`).join(", ");
  };

  client.on("message", (topic, payload, packet) => {
    const message = makeMessage(topic, payload, packet);
    const index = received.push(message) - 1;
    // Earlier waiters have priority, mirroring the order in which the test asked.
    for (const [i, w] of waiters.entries()) {
      if (w.topic !== topic || !safePredicate(w.predicate, message)) continue;
      waiters.splice(i, 1);
      clearTimeout(w.timer);
      cursors.set(topic, index + 1);
      w.resolve(message);
      return;
    }
  });

  return {
    async subscribe(filter) {
      const grants = await client.subscribeAsync(filter, { qos: 1 });
      const refused = grants.filter((g) => g.qos >= 0x80);
      if (refused.length > 0) {
        throw new Error(`Broker refused subscription to ${filter} (reason code ${refused[0]?.qos})`);
      }
    },

    next(topic, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
      if (closed) return Promise.reject(new Error("MqttProbe.next() after close()"));
      const index = findFrom(topic, (m) => safePredicate(predicate, m));
      if (index >= 0) {
        cursors.set(topic, index + 1);
        return Promise.resolve(received[index] as ReceivedMessage);
      }
      return new Promise<ReceivedMessage>((resolve, reject) => {
        const waiter: Waiter = {
          topic,
          predicate,
          resolve,
          reject,
          timer: setTimeout(() => {
            const i = waiters.indexOf(waiter);
            if (i >= 0) waiters.splice(i, 1);
            const onTopic = received.filter((m) => m.topic === topic);
            const last = onTopic.at(-1);
            reject(
              new Error(
                `No message on ${topic} matching the predicate within ${timeoutMs} ms. ` +
                  `Topics seen: ${describeSeen()}.` +
                  (last ? ` Last payload on ${topic}: ${preview(last.payload)}` : ""),
              ),
            );
          }, timeoutMs),
        };
        waiters.push(waiter);
      });
    },

    all(topic) {
      return received.filter((m) => m.topic === topic);
    },

    everything() {
      return [...received];
    },

    async publish(topic, payload, publishOpts) {
      await client.publishAsync(topic, payload, { qos: 1, ...publishOpts });
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`MqttProbe closed while waiting for a message on ${w.topic}`));
      }
      // Force: during an outage a graceful DISCONNECT would wait for a broker that is not there.
      await client.endAsync(!client.connected);
    },
  };
}

function makeMessage(topic: string, payload: Buffer, packet: IPublishPacket): ReceivedMessage {
  return {
    topic,
    payload,
    retain: packet.retain,
    properties: packet.properties,
    json<T = unknown>(): T {
      try {
        return JSON.parse(payload.toString("utf8")) as T;
      } catch (err) {
        throw new Error(`Payload on ${topic} is not JSON: ${preview(payload)}`, { cause: err });
      }
    },
  };
}

/** A predicate that throws (e.g. json() on a non-JSON payload) simply does not match. */
function safePredicate(predicate: (m: ReceivedMessage) => boolean, m: ReceivedMessage): boolean {
  try {
    return predicate(m);
  } catch {
    return false;
  }
}

function preview(payload: Buffer): string {
  const text = payload.toString("utf8");
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
