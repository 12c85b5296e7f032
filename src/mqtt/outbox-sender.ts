import { listen } from "../util/emitter.js";
import type { Logger } from "pino";
import { MqttPublishRefusedError, type GatewayEvents, type MqttGateway } from "./gateway.js";
import type { Outbox } from "../storage/outbox.js";

/** Pause before trying again after a publish failed while the connection stayed up. */
const RETRY_MS = 1_000;
/**
 * An event in flight while the broker dropped the connection this many times is one the broker will not take
 * (a 3.1.1 broker says nothing about its maximum packet size; it just disconnects): drop it, so later events flow.
 */
export const POISON_DISCONNECTS = 2;

/**
 * Delivers the outbox to the broker, oldest first, one event at a time: the next is published only after the
 * broker acknowledged the previous one (QoS 1 PUBACK), which keeps the order across outages and restarts.
 * While one is in flight mqtt.js owns it (and resends it itself after a reconnect), so this never publishes an
 * event a second time in the same run; only a restart can repeat one, whose PUBACK came and whose file was not
 * yet removed. Subscribers de-duplicate on `id`.
 */
export class OutboxSender {
  private inFlight = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  /** The event in flight, the disconnects it has seen, and how to give it up. */
  private current: { seq: number; disconnects: number; abandon: AbortController } | undefined;

  constructor(
    private readonly outbox: Outbox,
    private readonly gateway: MqttGateway,
    private readonly log: Logger,
  ) {
    this.unsubscribe = listen<GatewayEvents>(gateway, {
      disconnect: (dropped) => {
        if (dropped) this.disconnected();
      },
    });
  }

  private disconnected(): void {
    const current = this.current;
    if (!current || this.stopped) return;
    current.disconnects += 1;
    if (current.disconnects < POISON_DISCONNECTS) return;
    // The broker drops us while this event is in flight, again and again: it will never take it.
    this.gateway.forgiveLastDisconnect();
    current.abandon.abort(
      new MqttPublishRefusedError(
        `the broker dropped the connection ${current.disconnects} times while this event was in flight (too large for it?)`,
      ),
    );
  }

  /** Sends the next event if the broker is there and nothing is in flight; call after each append and connect. */
  kick(): void {
    if (this.stopped || this.inFlight || !this.gateway.connected) return;
    const entry = this.outbox.first();
    if (!entry) return;
    this.inFlight = true;
    const abandon = new AbortController();
    this.current = { seq: entry.seq, disconnects: 0, abandon };
    this.gateway.publishAcknowledged(entry.topic, JSON.stringify(entry.payload), abandon.signal).then(
      () => {
        this.inFlight = false;
        this.current = undefined;
        this.outbox.remove(entry.seq);
        this.kick();
      },
      (rejection: unknown) => {
        this.inFlight = false;
        this.current = undefined;
        if (this.stopped) return;
        const error: unknown = abandon.signal.aborted ? abandon.signal.reason : rejection;
        if (error instanceof MqttPublishRefusedError) {
          // Would be refused forever and hold back every later event: give it up, loudly.
          this.log.error(
            { id: entry.payload.id, topic: entry.topic, err: { message: error.message } },
            "broker refused an event; dropping it",
          );
          this.outbox.remove(entry.seq);
          this.kick();
          return;
        }
        this.log.warn(
          { id: entry.payload.id, topic: entry.topic, err: { message: String(error) } },
          "event not acknowledged; it stays in the outbox",
        );
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), RETRY_MS);
        this.retryTimer.unref();
      },
    );
  }

  /** Stops sending; what is left stays in the outbox for the next start. */
  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.retryTimer);
  }
}
