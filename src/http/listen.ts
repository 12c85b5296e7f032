import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Listens on `host:port`; rejects with one line naming `what`, the address and the settings that choose it when it
 * cannot (port taken, an address not on this machine, a port below 1024 without the right).
 */
export async function listenHttp(server: Server, host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new Error(
          `${what} cannot listen on ${host}:${port}: ${error.message}; set EDGE_SIGNIN_DISPLAY_PORT to a free port ` +
            `(or EDGE_SIGNIN_DISPLAY_HOST to an address of this machine)`,
          { cause: error },
        ),
      );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/** `http://host:port` the server listens on (IPv6 in brackets). @throws when it is not listening. */
export function serverUrl(server: Server, what: string): string {
  const address = server.address() as AddressInfo | null;
  if (!address) throw new Error(`${what} is not listening`);
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Stops listening and ends every open connection (event streams included), then resolves. */
export async function closeHttp(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
