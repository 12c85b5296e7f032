import { connect, type Socket } from "node:net";

/**
 * Plain TCP clients of a loopback HTTP server, all from one address of 127.0.0.0/8 (`from`): several of them
 * stand for several machines on a LAN, which the servers' fair shares tell apart by address.
 */
export function rawClient(url: string, from: string) {
  const { port } = new URL(url);
  const sockets: Socket[] = [];
  const open = (request?: string) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: Number(port), localAddress: from }, () => {
        if (request) socket.write(request);
        // Reading, so a close from the server is seen.
        socket.resume();
        resolve(socket);
      });
      socket.on("error", () => undefined);
      socket.once("error", reject);
      sockets.push(socket);
    });
  const request = (path: string, close = false) =>
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
  return {
    sockets,
    /** An event stream that reads everything it is sent (a page that works). */
    stream: (path: string) => open(request(path)),
    /** A connection that says nothing at all. */
    idle: () => open(),
    /** One request on a connection of its own: the whole answer, as the server closes it. */
    get: async (path: string): Promise<string> => {
      const socket = await open(request(path, true));
      return new Promise<string>((resolve) => {
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => (text += chunk));
        socket.once("close", () => resolve(text));
      });
    },
    live: () => sockets.filter((s) => !s.destroyed && s.readyState === "open").length,
    close: () => sockets.forEach((s) => s.destroy()),
  };
}
