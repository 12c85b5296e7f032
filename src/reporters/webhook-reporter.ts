import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventEmitter } from "eventemitter3";
import type { Logger } from "pino";
import { Agent } from "undici";
import { boundedSignal } from "./abort.js";
import { backoffDelay } from "../util/backoff.js";
import type { RetryConfig, WebhookConfig } from "../config/index.js";
import type { AgentEvents } from "../events.js";
import { describeFetchError } from "../http/fetch-error.js";
import { Outbox, type OutboxEntry } from "../storage/outbox.js";
import { isEventType, type EventPayloads, type EventType } from "../mqtt/topics.js";
import { codeIssued, eventEnvelope } from "./envelope.js";
import { subscribe, type Reporter } from "./reporter.js";
import { SIGNATURE_HEADER, signWebhook } from "./webhook-signature.js";

type Outcome = "delivered" | "rejected" | "retry";

/**
 * POSTs every event, signed, to `EDGE_SIGNIN_WEBHOOK_URL`. Events are written to `STATE_DIR/webhook-queue/`
 * before anything is sent and removed only once the receiver answered 2xx (or refused them for good with a
 * 4xx), so a receiver that is down for an hour, or an agent restart meanwhile, loses nothing. One request at a
 * time, oldest first: receivers get events in the order they happened, each at least once, with a stable `id`.
 */
export class WebhookReporter implements Reporter {
  readonly name = "webhook";
  private readonly queue: Outbox;
  private unsubscribers: Array<() => void> = [];
  private readonly stopping = new AbortController();
  /** Connections to the receiver, kept alive between events and closed on stop. */
  private readonly http = new Agent();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly config: WebhookConfig,
    private readonly deviceId: string,
    stateDir: string,
    private readonly retry: RetryConfig,
    private readonly log: Logger,
    /** The token cache's key, if one is set: queued events hold claims (maybe the ID token), so seal them too. */
    queueKey?: Buffer,
  ) {
    this.queue = new Outbox(
      join(stateDir, "webhook-queue"),
      // The queue's "topic" is the event type, sent as the X-Edge-Signin-Event-Type header.
      { maxEvents: config.queueMax, key: queueKey, accepts: isEventType },
      log,
    );
  }

  start(events: EventEmitter<AgentEvents>): Promise<void> {
    const onError = (error: unknown) => this.log.error({ err: error }, "webhook reporter failed");
    this.queue.open();
    this.unsubscribers = [
      subscribe(events, "prompt", (p) => this.enqueue("code_issued", codeIssued(p), p), onError),
      subscribe(events, "authenticated", (e) => this.enqueue("authenticated", e), onError),
      subscribe(events, "code_expired", (e) => this.enqueue("code_expired", e), onError),
      subscribe(events, "sign_in_failed", (e) => this.enqueue("sign_in_failed", e), onError),
      subscribe(events, "signed_out", (e) => this.enqueue("signed_out", e), onError),
    ];
    this.loop = this.run(this.stopping.signal).catch((error: unknown) => {
      this.log.error({ err: error }, "webhook delivery stopped unexpectedly");
    });
    return Promise.resolve();
  }

  /** Half the queue holds undelivered events: commands wait (Reporter.busy), so they never push one out. */
  busy(): boolean {
    return this.queue.nearlyFull;
  }

  /** Stops delivering; whatever is still queued goes out after the next start. */
  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    this.stopping.abort();
    this.wake?.();
    await this.loop;
    await this.queue.flush();
    await this.http.close();
  }

  private enqueue<T extends EventType>(type: T, data: EventPayloads[T], source: object = data): void {
    this.queue.append(type, eventEnvelope(type, this.deviceId, data, source));
    this.wake?.();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const head = this.queue.first();
      if (!head) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const outcome = await this.deliver(head, signal);
      if (signal.aborted) return;
      if (outcome !== "retry") {
        this.queue.remove(head.seq);
        failures = 0;
        continue;
      }
      failures += 1;
      const delay = backoffDelay(failures, this.retry);
      this.log.debug(
        { id: head.payload.id, delayMs: delay, queued: this.queue.size },
        "webhook retry scheduled",
      );
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }

  private async deliver(entry: OutboxEntry, signal: AbortSignal): Promise<Outcome> {
    const body = JSON.stringify(entry.payload);
    // Signed when sent, not when queued: the receiver's replay window counts from the delivery attempt.
    const signature = signWebhook(this.config.secret, body, Math.floor(Date.now() / 1000));
    const context = { id: entry.payload.id, type: entry.topic };
    const attempt = boundedSignal(signal, this.config.timeoutMs);
    try {
      // undici's request API (a redirect is not followed, and counts as a refusal below).
      const target = new URL(this.config.url);
      const response = await this.http.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "edge-signin",
          [SIGNATURE_HEADER]: signature,
          "x-edge-signin-event-id": entry.payload.id,
          "x-edge-signin-event-type": entry.topic,
        },
        body,
        signal: attempt.signal,
      });
      await response.body.dump();
      const status = response.statusCode;
      if (status >= 200 && status < 300) {
        this.log.debug({ ...context, status }, "webhook delivered");
        return "delivered";
      }
      // 408 and 429 say "later", as 5xx do; any other 4xx (and a redirect) will not change by retrying.
      if (status >= 500 || status === 408 || status === 429) {
        this.log.warn({ ...context, status }, "webhook receiver failed; will retry");
        return "retry";
      }
      this.log.warn({ ...context, status }, "webhook receiver refused the event; dropping it");
      return "rejected";
    } catch (error) {
      if (!signal.aborted)
        this.log.warn(
          { ...context, err: describeFetchError(error) },
          "webhook receiver unreachable; will retry",
        );
      return "retry";
    } finally {
      attempt.release();
    }
  }
}
