/**
 * A tiny HTTPS proxy, as on corporate and hotel networks: it answers HTTP CONNECT by opening a tunnel to the
 * named host and port, and records every CONNECT it saw (so a test can prove requests went through it).
 */
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";

export interface ConnectProxy {
  /** `http://127.0.0.1:{port}`: the value for HTTPS_PROXY. */
  readonly url: string;
  /** `host:port` of every CONNECT so far. */
  tunnels(): string[];
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end("CONNECT only"));
  server.on("connect", (req, client: Socket, head: Buffer) => {
    const authority = req.url ?? "";
    seen.push(authority);
    const [host, port] = splitAuthority(authority);
    const upstream = connect({ host, port }, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    }
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", () => {
      if (!client.destroyed) client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      end();
    });
    client.on("error", end);
    client.once("close", end);
    upstream.once("close", end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels: () => [...seen],
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function splitAuthority(authority: string): [string, number] {
  const at = authority.lastIndexOf(":");
  return [authority.slice(0, at).replace(/^\[|\]$/g, ""), Number(authority.slice(at + 1))];
}
