import type { Server } from "node:http";
import { isIPv4, type Socket } from "node:net";

/**
 * Who a connection counts against: its IPv4 address, or the /64 of an IPv6 one (one machine can take any number
 * of addresses in its own /64, so counting single IPv6 addresses would let it take as many shares).
 */
export function clientKey(address: string | undefined): string {
  if (!address) return "?";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] ?? address;
  if (isIPv4(address)) return address;
  const groups = expandIPv6(address);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : address;
}

function expandIPv6(address: string): string[] | undefined {
  const [head = "", tail] = address.split("%")[0]?.split("::") ?? [];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  return [...left, ...Array<string>(missing).fill("0"), ...right].map((g) =>
    g.toLowerCase().replace(/^0+(?=.)/, ""),
  );
}

/**
 * Holders (connections, event streams) grouped by client, with a cap for each client and one for all. Admitting a
 * holder may ask for another to be let go: the client's own oldest when it is at its cap (a TV that reloads its
 * page gets the new stream, not a refusal), or, when all are taken, the oldest of the client that holds the most,
 * if it holds more than the newcomer would. So one client, or a few, can never take every place from the others.
 */
export class FairShare<T> {
  private readonly byClient = new Map<string, T[]>();
  private total = 0;

  constructor(
    private readonly perClient: number,
    private readonly overall: number,
  ) {}

  /** `admit`: take it; `evict` (admitted, let `evict` go first); `refuse`: no place that is fair to free. */
  admit(
    client: string,
    holder: T,
  ): { readonly outcome: "admit" | "refuse" } | { outcome: "evict"; evict: T } {
    const own = this.byClient.get(client) ?? [];
    let evict: T | undefined;
    if (own.length >= this.perClient) evict = own[0];
    else if (this.total >= this.overall) {
      let heaviest: T[] | undefined;
      for (const holders of this.byClient.values())
        if (!heaviest || holders.length > heaviest.length) heaviest = holders;
      if (!heaviest || heaviest.length <= own.length + 1) return { outcome: "refuse" };
      evict = heaviest[0];
    }
    if (evict !== undefined) this.release(this.clientOf(evict) ?? client, evict);
    const list = this.byClient.get(client) ?? [];
    list.push(holder);
    this.byClient.set(client, list);
    this.total += 1;
    return evict === undefined ? { outcome: "admit" } : { outcome: "evict", evict };
  }

  /** Forgets a holder (closed); a holder not held is ignored. */
  release(client: string, holder: T): void {
    const list = this.byClient.get(client);
    const index = list?.indexOf(holder) ?? -1;
    if (!list || index < 0) return;
    list.splice(index, 1);
    this.total -= 1;
    if (list.length === 0) this.byClient.delete(client);
  }

  count(client: string): number {
    return this.byClient.get(client)?.length ?? 0;
  }

  get size(): number {
    return this.total;
  }

  private clientOf(holder: T): string | undefined {
    for (const [client, holders] of this.byClient) if (holders.includes(holder)) return client;
    return undefined;
  }
}

/**
 * Shares `server`'s TCP connections fairly between clients: a client at its cap gives up its own oldest, and when
 * all places are taken the client holding most gives up its oldest (see {@link FairShare}). A request's headers
 * must arrive within 10 s and the whole request within 30 s, so an idle or dripping connection goes.
 * `onRefused` hears of every connection closed or refused for a share (to log it, sparingly).
 */
export function shareConnections(
  server: Server,
  limits: { readonly perClient: number; readonly overall: number },
  onRefused: (client: string) => void,
): FairShare<Socket> {
  const shares = new FairShare<Socket>(limits.perClient, limits.overall);
  server.on("connection", (socket: Socket) => {
    const client = clientKey(socket.remoteAddress);
    const decision = shares.admit(client, socket);
    if (decision.outcome === "refuse") {
      onRefused(client);
      socket.destroy();
      return;
    }
    if (decision.outcome === "evict") {
      onRefused(client);
      decision.evict.destroy();
    }
    socket.once("close", () => shares.release(client, socket));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return shares;
}
