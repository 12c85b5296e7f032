import type { MqttProtocol } from "mqtt";

/**
 * The broker nodes one link may use (`EDGE_SIGNIN_MQTT_URL` as a comma-separated list), which one the next attempt
 * goes to, and how long it waits. Pure: no client, no timers, so each rule is a unit test.
 *
 * Why not mqtt.js's own `servers` option: it sets only host, port and protocol per server, so after a move a TLS
 * connection still names the first node in SNI and in the certificate check, a WebSocket path stays the first
 * node's, and it cannot keep the protocol version per node. Here each node's URL sets every part of the address.
 */

/** One node of the list, with what the link learned about it. */
export interface BrokerNode {
  /** The node's URL as configured (may carry credentials: redact before logging). */
  readonly url: string;
  /** The version the next attempt on this node uses: MQTT 5 or 3.1.1 (4), per node since nodes may differ. */
  version: 4 | 5;
  /** A connection to this node was accepted once (with either version). */
  everConnected: boolean;
  /** The versions this node accepted a connection with: a silent close on one of them is no version refusal. */
  accepted: Set<4 | 5>;
}

/** The address part of mqtt.js's client options, as its stream builders read them before every attempt. */
export interface NodeAddress {
  protocol: MqttProtocol;
  host: string;
  hostname: string;
  port: number | undefined;
  path: string | undefined;
  servername: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
}

/**
 * The list a link starts from: every URL in the order given (the first is the "home" node, tried first), each with
 * the version the setting asks for (`auto` starts with 5).
 */
export function brokerNodes(urls: readonly string[], setting: "auto" | 4 | 5): BrokerNode[] {
  return urls.map((url) => ({
    url,
    version: setting === "auto" ? 5 : setting,
    everConnected: false,
    accepted: new Set(),
  }));
}

/** The node after `index`, round robin. */
export function nextNode(index: number, count: number): number {
  return (index + 1) % count;
}

/**
 * The wait before the attempt after `failures` failed ones, in ms: every node gets one attempt at `initialMs`
 * before the wait doubles (a lost node is left for the next at once), then each full round doubles it up to `maxMs`.
 */
export function reconnectDelay(
  failures: number,
  nodeCount: number,
  reconnect: { readonly initialMs: number; readonly maxMs: number },
): number {
  const rounds = Math.floor(failures / Math.max(1, nodeCount));
  return Math.min(reconnect.initialMs * 2 ** Math.min(rounds, 30), reconnect.maxMs);
}

/**
 * The address mqtt.js should connect to for `url` (`mqtt:`, `mqtts:`, `ws:`, `wss:`), as its `connect()` would
 * derive it from a URL: no port means the scheme's default, SNI names the node's host, and the URL's credentials
 * apply only when the settings give none. `hasClientCert`: mqtt.js makes `mqtt` into `mqtts` (and `ws` into `wss`)
 * when a certificate and key are set, and so does this.
 */
export function nodeAddress(url: string, withCredentials: boolean, hasClientCert: boolean): NodeAddress {
  const parsed = new URL(url);
  let protocol = parsed.protocol.replace(/:$/, "");
  if (hasClientCert && protocol === "mqtt") protocol = "mqtts";
  if (hasClientCert && protocol === "ws") protocol = "wss";
  // IPv6 literals come bracketed from URL; sockets want them bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const address: NodeAddress = {
    // The configuration admits only mqtt, mqtts, ws and wss, all of them mqtt.js protocols.
    protocol: protocol as MqttProtocol,
    host,
    hostname: host,
    port: parsed.port === "" ? undefined : Number(parsed.port),
    path: protocol.startsWith("ws") ? `${parsed.pathname}${parsed.search}` : undefined,
    // mqtt.js's TLS builder sets SNI from the host only when none is set: a move must clear the last node's.
    servername: undefined,
  };
  if (withCredentials) {
    // Every key set, so a move from a node with credentials in its URL to one without drops them.
    address.username = parsed.username === "" ? undefined : decodeURIComponent(parsed.username);
    address.password = parsed.password === "" ? undefined : decodeURIComponent(parsed.password);
  }
  return address;
}
