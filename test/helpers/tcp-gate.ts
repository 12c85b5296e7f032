/**
 * A TCP relay in front of the test broker that can hold new connections back for a moment. The broker outage
 * itself is real (TestBroker.stop()); the gate only decides when the agent may reach the restarted broker,
 * so a test can have its own subscriber in place first. Events are not retained: a subscriber that comes
 * after the agent's redelivery would see nothing, and the test would prove nothing.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export interface TcpGate {
  /** `mqtt://127.0.0.1:{port}`: give this to the agent instead of the broker's URL. */
  readonly url: string;
  /** New connections wait (their bytes buffered) until release(). */
  hold(): void;
  /** Connects every waiting connection to the broker, and lets new ones through at once. */
  release(): void;
  /**
   * Cuts every connection through the gate at once, as a Wi-Fi link that drops for a moment does: the broker and
   * the client each see their connection end; new connections go through as before.
   */
  reset(): void;
  close(): Promise<void>;
}

export async function startTcpGate(brokerUrl: string): Promise<TcpGate> {
  const target = new URL(brokerUrl);
  const sockets = new Set<Socket>();
  let waiting: Socket[] = [];
  let held = false;

  const relay = (client: Socket) => {
    if (client.destroyed) return;
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side going away ends the other, as a broker restart ends the client's connection.
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once("close", end);
    upstream.once("close", end);
    client.on("error", end);
    upstream.on("error", end);
  };

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    if (held) {
      // Pause so nothing is lost: the CONNECT packet stays in the socket until the relay exists.
      client.pause();
      waiting.push(client);
    } else relay(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `mqtt://127.0.0.1:${port}`,
    hold() {
      held = true;
    },
    release() {
      held = false;
      const queued = waiting;
      waiting = [];
      for (const client of queued) relay(client);
    },
    reset() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
