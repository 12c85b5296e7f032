/**
 * An HTTPS proxy that lets nothing through: it records the target of every CONNECT (and every plain request)
 * and refuses it. Given to the agent as HTTPS_PROXY with NO_PROXY naming the provider, it proves that no
 * request left for any other host, without any request reaching beyond loopback.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface RecordingProxy {
  /** `http://127.0.0.1:{port}`: the value for HTTPS_PROXY. */
  readonly url: string;
  /** `host:port` of every CONNECT, and `METHOD url` of every plain request, so far. */
  seen(): string[];
  close(): Promise<void>;
}

export async function startRecordingProxy(): Promise<RecordingProxy> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method ?? "GET"} ${req.url ?? ""}`);
    res.writeHead(403).end();
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("connect", (req, client: Socket) => {
    seen.push(req.url ?? "");
    client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen: () => [...seen],
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
