import type { Logger } from "pino";
import { MqttPublishRefusedError, type MqttGateway } from "./gateway.js";
import type { Outbox } from "./outbox.js";

/** Pause before trying again after a publish failed while the connection stayed up. */
const RETRY_MS = 1_000;

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

  constructor(
    private readonly outbox: Outbox,
    private readonly gateway: MqttGateway,
    private readonly log: Logger,
  ) {}

  /** Sends the next event if the broker is there and nothing is in flight; call after each append and connect. */
  kick(): void {
    if (this.stopped || this.inFlight || !this.gateway.connected) return;
    const entry = this.outbox.first();
    if (!entry) return;
    this.inFlight = true;
    this.gateway.publishAcknowledged(entry.topic, JSON.stringify(entry.payload)).then(
      () => {
        this.inFlight = false;
        this.outbox.remove(entry.seq);
        this.kick();
      },
      (error: unknown) => {
        this.inFlight = false;
        if (this.stopped) return;
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
    clearTimeout(this.retryTimer);
  }
}
