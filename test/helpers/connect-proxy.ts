/**
 * A tiny HTTPS proxy, as on corporate and hotel networks: it answers HTTP CONNECT by opening a tunnel to the
 * named host and port, and records every CONNECT it saw (so a test can prove requests went through it). Given
 * credentials, it asks for them as an authenticating proxy does (RFC 9110 Proxy-Authorization, Basic scheme):
 * a CONNECT without the right ones gets 407 and no tunnel.
 */
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";

export interface ConnectProxy {
  /** `http://127.0.0.1:{port}`: the value for HTTPS_PROXY. */
  readonly url: string;
  /** `host:port` of every CONNECT so far that was let through. */
  tunnels(): string[];
  /** How many CONNECTs were refused with 407 (missing or wrong credentials). */
  refused(): number;
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** Require these (the decoded user name and password) in a Basic Proxy-Authorization header. */
  readonly credentials?: { readonly username: string; readonly password: string };
}

export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const seen: string[] = [];
  let refused = 0;
  const sockets = new Set<Socket>();
  const expected = options.credentials
    ? `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString("base64")}`
    : undefined;
  const server: Server = createServer((_req, res) => res.writeHead(405).end("CONNECT only"));
  server.on("connect", (req, client: Socket, head: Buffer) => {
    const authority = req.url ?? "";
    if (expected !== undefined && req.headers["proxy-authorization"] !== expected) {
      refused++;
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
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
    refused: () => refused,
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
