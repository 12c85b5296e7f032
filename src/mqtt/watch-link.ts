import type { IPublishPacket, MqttClient } from "mqtt";
import type { MqttConfig } from "../config/index.js";
import { BrokerLink } from "./broker-link.js";
import { KeptSubscriptions, type SubscriptionRefusal } from "./quirks/kept-subscriptions.js";

/** A read-only client waits for its broker patiently: every 2 s at first, at most every 30 s. */
const RECONNECT = { initialMs: 2_000, maxMs: 30_000 };

export interface WatchLinkHandlers {
  message(topic: string, payload: Buffer, packet: IPublishPacket): void;
  /** The connection came up (with the MQTT version in use) or went down. */
  connection(connected: boolean, protocolVersion?: 4 | 5): void;
  /** The broker refused us for good after we had connected: the link stopped. */
  refused(error: Error): void;
  /** The broker refused a subscription; it is tried again with backoff (kept-subscriptions.ts). */
  subscriptionRefused(refusal: SubscriptionRefusal): void;
  /** Another client takes our client id or uses our user (said once; the link keeps trying, with backoff). */
  conflict(message: string): void;
  /** A message too large to take was skipped as it arrived, unread. */
  oversized(topic: string, bytes: number): void;
}

export interface WatchLink {
  readonly client: MqttClient;
  /**
   * Resolves once connected; an unreachable broker is waited for. Rejects only when the broker refuses us for good
   * at the start (MqttRefusedError, one line naming the setting); later refusals go to `handlers.refused`.
   */
  readonly connected: Promise<void>;
  /**
   * Subscribes (QoS 1) on this and every later connection, trying a refused filter again; resolves once each has
   * been granted (a NATS cluster refuses subscriptions for a while after it loses a node).
   */
  keep(filters: readonly string[]): Promise<void>;
  /** Ends the connection, also while still waiting for the broker. */
  close(): Promise<void>;
}

/**
 * The connection of a read-only client (a display, the fleet view): MQTT 5 or 3.1.1 as the broker speaks, kept up
 * across outages.
 */
export function openWatchLink(config: MqttConfig, clientId: string, handlers: WatchLinkHandlers): WatchLink {
  // 15 s: a display must say "can't reach the message broker" soon, and a broker behind a port proxy that does not
  // close the client's connection when the broker dies is noticed only by keep-alive (after 1.5 times it).
  const link = new BrokerLink({
    config,
    clientId,
    reconnect: RECONNECT,
    keepaliveSeconds: 15,
    role: "viewer",
  });
  const started = link.start();
  const client = link.mqtt as MqttClient;
  const kept = new KeptSubscriptions(client, {
    onRefused: (refusal) => handlers.subscriptionRefused(refusal),
  });
  client.on("message", (topic, payload, packet) => handlers.message(topic, payload, packet));
  link.on("up", (up) => handlers.connection(true, up.protocolVersion));
  link.on("conflict", (message) => handlers.conflict(message));
  link.on("oversized", ({ topic, bytes }) => handlers.oversized(topic, bytes));
  client.on("offline", () => handlers.connection(false));
  let connected = false;
  link.on("fatal", (error) => {
    if (connected) handlers.refused(error);
  });
  return {
    client,
    connected: started.then(() => {
      connected = true;
    }),
    keep: (filters) => {
      kept.add(filters);
      return kept.whenGranted();
    },
    close: async () => {
      kept.stop();
      link.release();
      await client.endAsync(true);
    },
  };
}
