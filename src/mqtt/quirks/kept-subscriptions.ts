import type { MqttClient } from "mqtt";

/** A subscription the broker refused (SUBACK reason code 0x80 or above, MQTT 5 §3.9.3; 0x80 in MQTT 3.1.1). */
export interface SubscriptionRefusal {
  readonly filter: string;
  /** The SUBACK reason code: 0x80 unspecified (a NATS cluster electing a leader), 0x87 not authorized, ... */
  readonly reasonCode: number;
  /** When it is tried again, in ms from now (on this connection; every new connection tries again at once). */
  readonly retryInMs: number;
}

export interface KeptSubscriptionsOptions {
  /** The first wait before a refused subscription is tried again, in ms; doubles up to `retryMaxMs`. Default 1 s. */
  readonly retryInitialMs?: number;
  /** Default 60 s. */
  readonly retryMaxMs?: number;
  /**
   * MQTT 5 "retain as published": a message keeps the retain flag its publisher gave it, also when it arrives
   * live (without it the broker clears the flag on live delivery). Ignored on MQTT 3.1.1. Default false.
   */
  readonly retainAsPublished?: boolean;
  /** Called on every refusal; the caller decides what to log (once per filter and connection is enough). */
  readonly onRefused?: (refusal: SubscriptionRefusal) => void;
}

/**
 * Keeps QoS 1 subscriptions on one mqtt.js client across reconnects and refusals. mqtt.js resubscribes after a
 * reconnect, but it drops a filter whose SUBACK is refused and never tries it again, and its own resubscription
 * reports a refusal to no one: a NATS cluster refuses subscriptions (0x80) while it elects a stream leader after
 * losing a node, which left an agent deaf to commands for good. Here every filter is subscribed on every
 * connection, one SUBSCRIBE per filter so each has its own answer, and a refused one is tried again with backoff
 * for as long as the connection lasts. The client must be made with `resubscribe: false` (BrokerLink does).
 */
export class KeptSubscriptions {
  private readonly filters = new Set<string>();
  /** Granted on the current connection. */
  private readonly granted = new Set<string>();
  private readonly everGranted = new Set<string>();
  private readonly retries = new Map<string, { timer: NodeJS.Timeout; attempt: number }>();
  private waiters: Array<() => void> = [];
  private stopped = false;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly client: MqttClient,
    private readonly options: KeptSubscriptionsOptions = {},
  ) {
    this.retryInitialMs = options.retryInitialMs ?? 1_000;
    this.retryMaxMs = options.retryMaxMs ?? 60_000;
    client.on("connect", this.connected);
    client.on("close", this.lost);
  }

  /** Subscribes to `filters` now if connected, and on every connection from now on. */
  add(filters: readonly string[]): void {
    for (const filter of filters) {
      if (this.filters.has(filter)) continue;
      this.filters.add(filter);
      if (this.client.connected) this.subscribe(filter, 0);
    }
  }

  /** No longer kept; unsubscribed if connected. */
  remove(filter: string): void {
    if (!this.filters.delete(filter)) return;
    this.granted.delete(filter);
    this.cancelRetry(filter);
    if (this.client.connected) this.client.unsubscribe(filter, () => undefined);
  }

  /** Resolves once every filter added so far has been granted at least once (on any connection). */
  whenGranted(): Promise<void> {
    if (this.everGrantedAll()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops retrying and listening; the caller ends the client. */
  stop(): void {
    this.stopped = true;
    for (const filter of [...this.retries.keys()]) this.cancelRetry(filter);
    this.client.off("connect", this.connected);
    this.client.off("close", this.lost);
  }

  private readonly connected = (): void => {
    this.granted.clear();
    for (const filter of this.filters) {
      this.cancelRetry(filter);
      this.subscribe(filter, 0);
    }
  };

  private readonly lost = (): void => {
    this.granted.clear();
    // The next connection subscribes everything again, at once.
    for (const filter of [...this.retries.keys()]) this.cancelRetry(filter);
  };

  private subscribe(filter: string, attempt: number): void {
    const client = this.client;
    client.subscribe(
      filter,
      { qos: 1, rap: this.options.retainAsPublished ?? false },
      (error, _granted, suback) => {
        if (this.stopped || !this.filters.has(filter)) return;
        const code = suback?.granted?.[0];
        const reasonCode = typeof code === "number" ? code : undefined;
        if (!error && (reasonCode === undefined || reasonCode < 0x80)) {
          this.granted.add(filter);
          this.everGranted.add(filter);
          if (this.everGrantedAll()) for (const resolve of this.waiters.splice(0)) resolve();
          return;
        }
        // No SUBACK at all: the connection went before it came, and the next connection subscribes again.
        if (reasonCode === undefined || !client.connected) return;
        const retryInMs = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** attempt);
        this.options.onRefused?.({ filter, reasonCode, retryInMs });
        this.cancelRetry(filter);
        const timer = setTimeout(() => {
          this.retries.delete(filter);
          if (!this.stopped && client.connected && this.filters.has(filter))
            this.subscribe(filter, attempt + 1);
        }, retryInMs);
        timer.unref();
        this.retries.set(filter, { timer, attempt });
      },
    );
  }

  private cancelRetry(filter: string): void {
    const retry = this.retries.get(filter);
    if (retry) clearTimeout(retry.timer);
    this.retries.delete(filter);
  }

  private everGrantedAll(): boolean {
    return [...this.filters].every((filter) => this.everGranted.has(filter));
  }
}
