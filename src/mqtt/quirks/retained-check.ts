import type { IPublishPacket, MqttClient } from "mqtt";
import type { Logger } from "pino";

/** After a retained message is sent (or a connection comes up), how long to wait before reading it back, in ms. */
export const RETAINED_CHECK_AFTER_MS = 10_000;
/** After a reconnect, a second look this much later: a lost connection's last will may land late (NATS cluster). */
export const RETAINED_RECHECK_AFTER_RECONNECT_MS = 30_000;
/** How long the retained copies take to arrive after the SUBACK, in ms (they follow it at once on a healthy broker). */
const READ_MS = 1_500;
/** Corrections in a row before giving up until the next change: a broker that keeps losing them gets no loop. */
const MAX_ROUNDS = 3;

export interface RetainedCheckOptions {
  readonly client: () => MqttClient | undefined;
  readonly connected: () => boolean;
  /** Called with the topics whose retained copy on the broker is not what was last published there. */
  readonly onMismatch: (topics: readonly string[]) => void;
  readonly log: Logger;
}

/**
 * Reads the device's own retained topics back from the broker (a QoS 0 subscription for a moment: on a NATS
 * cluster a QoS 0 subscription costs no JetStream consumer) and reports those whose copy is not what was last
 * published. A clustered broker may acknowledge a retained message and not keep it (NATS 2.9 while it elects a
 * stream leader), or store a lost connection's last will (`offline`) after the new connection's `online`; a display
 * that starts later would believe it. Nothing is sent on a healthy broker: only reads, once per change.
 *
 * A broker whose ACL does not let the agent read its own topics (an ACL from before this check) delivers nothing:
 * then checking stops until the next connection, and nothing is re-sent.
 */
export class RetainedCheck {
  /** What the broker should hold per topic; an empty payload: nothing. */
  private readonly expected = new Map<string, Buffer>();
  /** Bumped per topic by every expect(): a topic published again while a check reads is not judged by it. */
  private readonly generation = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private rounds = 0;
  private unreadable = false;
  private stopped = false;

  constructor(private readonly options: RetainedCheckOptions) {}

  /** Records what `topic` should now hold. `correction`: sent because a check found it wrong (counts a round). */
  expect(topic: string, payload: Buffer, correction = false): void {
    this.expected.set(topic, payload);
    this.generation.set(topic, (this.generation.get(topic) ?? 0) + 1);
    if (!correction) this.rounds = 0;
    this.scheduleIn(RETAINED_CHECK_AFTER_MS, true);
  }

  /** A connection came up: reset what the previous one learned, and look at `afterMs` (each, in ms). */
  connected(afterMs: readonly number[]): void {
    this.unreadable = false;
    this.rounds = 0;
    this.clear();
    for (const ms of afterMs) this.scheduleIn(ms, false);
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  /** One debounced check after a change; checks after a connect are kept as they are. */
  private scheduleIn(ms: number, debounce: boolean): void {
    if (this.stopped || this.unreadable) return;
    if (debounce && this.timers.length > 0) return;
    const timer = setTimeout(() => {
      this.timers = this.timers.filter((t) => t !== timer);
      void this.check();
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private clear(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }

  private async check(): Promise<void> {
    const client = this.options.client();
    if (this.stopped || this.unreadable || !client || !this.options.connected()) return;
    const topics = [...this.expected.keys()];
    if (topics.length === 0) return;
    // What each topic should hold as the read starts; one published again before the read ends is a race (the
    // broker may send the copy from before or after it), not a lost message: the check after that change judges it.
    const want = new Map(this.expected);
    const generations = new Map(this.generation);
    const seen = new Map<string, Buffer>();
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => {
      if (packet.retain && this.expected.has(topic)) seen.set(topic, payload);
    };
    client.on("message", onMessage);
    try {
      await client.subscribeAsync(topics, { qos: 0 });
      await new Promise((resolve) => setTimeout(resolve, READ_MS).unref());
    } catch (error) {
      // Refused (a cluster electing a leader) or the connection went: the next change or connect looks again.
      this.options.log.debug(
        { err: { message: (error as Error).message } },
        "retained check not possible now",
      );
      return;
    } finally {
      client.off("message", onMessage);
      if (client.connected) client.unsubscribe(topics, () => undefined);
    }
    if (this.stopped || !this.options.connected()) return;
    if (seen.size === 0) {
      // Not even our own `online`: the ACL does not let us read our topics. Nothing to compare with.
      this.unreadable = true;
      this.options.log.debug(
        "the broker shows this agent none of its own retained topics; not checking them",
      );
      return;
    }
    const wrong = topics.filter((topic) => {
      if (this.generation.get(topic) !== generations.get(topic)) return false;
      return !(seen.get(topic) ?? Buffer.alloc(0)).equals(want.get(topic) ?? Buffer.alloc(0));
    });
    const raced = topics.filter((topic) => this.generation.get(topic) !== generations.get(topic));
    this.options.log.debug({ topics, raced, wrong }, "read back the broker's copies of our topics");
    if (wrong.length === 0) return;
    this.rounds += 1;
    if (this.rounds > MAX_ROUNDS) {
      this.options.log.warn(
        { topics: wrong },
        "the broker keeps losing retained messages; not sending them again",
      );
      return;
    }
    this.options.log.warn(
      { topics: wrong },
      "the broker holds outdated retained messages (a clustered broker that lost them); sending them again",
    );
    this.options.onMismatch(wrong);
  }
}
