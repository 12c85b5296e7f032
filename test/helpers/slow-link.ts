/**
 * A TCP relay on loopback that behaves like a link with a long round trip (NB-IoT, congested GPRS, satellite):
 * a new connection reaches the far end one round trip later (the TCP handshake), and every byte takes half a
 * round trip in each direction. Order is kept; nothing is lost. Only the delay is made up; the broker is real.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net";

export interface SlowLink {
  /** `mqtt://127.0.0.1:{port}`: give this to the client instead of the broker's URL. */
  readonly url: string;
  /** Connections the relay accepted so far (each connection attempt of the client). */
  connections(): number;
  close(): Promise<void>;
}

export async function startSlowLink(brokerUrl: string, roundTripMs: number): Promise<SlowLink> {
  const target = new URL(brokerUrl);
  const oneWay = roundTripMs / 2;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let accepted = 0;
  const later = (ms: number, run: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
  };
  /** Everything `from` sends reaches `to` half a round trip later, in order; so does its end. */
  const delay = (from: Socket, to: Socket) => {
    from.on("data", (chunk: Buffer) => later(oneWay, () => to.destroyed || to.write(chunk)));
    from.once("end", () => later(oneWay, () => to.end()));
  };

  const server: Server = createServer((client) => {
    accepted += 1;
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    const held: Buffer[] = [];
    const hold = (chunk: Buffer) => held.push(chunk);
    client.on("data", hold);
    // The handshake: the far end hears of the connection one round trip later.
    later(roundTripMs, () => {
      if (client.destroyed) return;
      const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
      sockets.add(upstream);
      upstream.once("close", () => {
        sockets.delete(upstream);
        later(oneWay, () => client.destroy());
      });
      upstream.on("error", () => upstream.destroy());
      client.once("close", () => later(oneWay, () => upstream.destroy()));
      client.off("data", hold);
      // What the client sent during the handshake left it at once and is half a round trip from the far end.
      for (const chunk of held) later(oneWay, () => upstream.destroyed || upstream.write(chunk));
      delay(client, upstream);
      delay(upstream, client);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connections: () => accepted,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
