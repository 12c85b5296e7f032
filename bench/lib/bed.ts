import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import mqtt from "mqtt";
import { startDevIdentityProvider, type DevIdentityProvider } from "../../src/dev/identity-provider.js";
import { startTestBroker, type TestBroker } from "../../test/helpers/broker.js";

export const TOPIC_PREFIX = "bench";

/** A display or authenticated message as the bench's subscriber received it. */
export interface Seen {
  readonly deviceId: string;
  readonly kind: "display" | "authenticated";
  /** performance.now() when the message reached the subscriber. */
  readonly at: number;
  readonly payload: Record<string, unknown>;
}

/**
 * The subscriber that plays the TV and the home: it hears every device's display and `authenticated`
 * event and timestamps them on arrival. Messages that arrive before anyone waits are kept.
 */
export class Watcher {
  private readonly seen = new Map<string, Seen>();
  private readonly waiters = new Map<string, (seen: Seen) => void>();

  private constructor(private readonly client: mqtt.MqttClient) {
    client.on("message", (topic, payload) => {
      const at = performance.now();
      const [, deviceId, ...rest] = topic.split("/");
      const kind = rest.join("/") === "display" ? "display" : "authenticated";
      // A zero-length retained display is a clear, not a code.
      if (!deviceId || payload.length === 0) return;
      const seen: Seen = {
        deviceId,
        kind,
        at,
        payload: JSON.parse(payload.toString("utf8")) as Record<string, unknown>,
      };
      const key = `${kind}:${deviceId}`;
      const waiter = this.waiters.get(key);
      if (waiter) {
        this.waiters.delete(key);
        waiter(seen);
      } else this.seen.set(key, seen); // the latest counts: a device that cycles shows a new code each time
    });
  }

  static async connect(url: string): Promise<Watcher> {
    const client = await mqtt.connectAsync(url, {
      clientId: `bench-watcher-${process.pid}`,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    await client.subscribeAsync([`${TOPIC_PREFIX}/+/display`, `${TOPIC_PREFIX}/+/events/authenticated`], {
      qos: 1,
    });
    return new Watcher(client);
  }

  /** The first display (or authenticated) message of a device, already received or still to come. */
  next(kind: Seen["kind"], deviceId: string): Promise<Seen> {
    const key = `${kind}:${deviceId}`;
    const early = this.seen.get(key);
    if (early) {
      this.seen.delete(key);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => this.waiters.set(key, resolve));
  }

  /** Forgets what a device has shown, so the next cycle of the same device waits for fresh messages. */
  forget(deviceId: string): void {
    this.seen.delete(`display:${deviceId}`);
    this.seen.delete(`authenticated:${deviceId}`);
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/** Everything a benchmark stands on: a real Mosquitto, the local OpenID provider, a subscriber, scratch space. */
export interface Bed {
  readonly broker: TestBroker;
  readonly idp: DevIdentityProvider;
  readonly watcher: Watcher;
  readonly scratch: string;
  readonly pollIntervalMs: number;
  close(): Promise<void>;
}

export async function startBed(pollIntervalSeconds: number): Promise<Bed> {
  const scratch = await mkdtemp(join(tmpdir(), "edge-signin-bench-"));
  const [broker, idp] = await Promise.all([
    startTestBroker(),
    startDevIdentityProvider({ pollIntervalSeconds, certDir: scratch }),
  ]);
  const watcher = await Watcher.connect(broker.url);
  return {
    broker,
    idp,
    watcher,
    scratch,
    pollIntervalMs: pollIntervalSeconds * 1000,
    async close() {
      await watcher.close();
      await Promise.all([broker.close(), idp.close()]);
      await rm(scratch, { recursive: true, force: true });
    },
  };
}
