import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { listen } from "../listen.js";
import type { DeviceSnapshot, DeviceView, DeviceViewEvents } from "./device-view.js";
import { CLIENT_JS } from "./web/client.js";
import { devicePage, indexPage, notFoundPage } from "./web/pages.js";
import { STYLE_CSS } from "./web/style.js";

export interface WebDisplayOptions {
  readonly host: string;
  /** 0 picks a free port; {@link WebDisplayServer.url} tells which. */
  readonly port: number;
  /** One view per device, keyed by device id; each gets its page at `/devices/{id}`. */
  readonly views: ReadonlyMap<string, DeviceView>;
  readonly logger: Logger;
  /** Pause between keep-alive comments on open event streams. Default 15 s. */
  readonly heartbeatMs?: number;
  /** How long a page waits before reconnecting a lost event stream (the SSE `retry:` field). Default 2 s. */
  readonly reconnectMs?: number;
}

/**
 * Everything a page needs comes from this server (no CDN, no external font): edge networks are often offline.
 * The policy keeps the page to its own origin, with the QR code as a data: image.
 */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

const DEVICE_PATH = /^\/devices\/([^/]+)(\/events)?$/;

/**
 * The web display: serves one page per device and pushes the device's snapshot to every open page over
 * Server-Sent Events. The browser never talks to the broker, so it holds no broker credentials and the broker
 * needs no WebSocket listener.
 */
export class WebDisplayServer {
  private readonly server: Server;
  private readonly streams = new Map<string, Set<ServerResponse>>();
  private readonly unsubscribes: Array<() => void> = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly options: WebDisplayOptions) {
    this.log = options.logger.child({ module: "web-display" });
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** `http://host:port` the server listens on; valid after start(). */
  get url(): string {
    const address = this.server.address() as AddressInfo | null;
    if (!address) throw new Error("the web display is not listening");
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  async start(): Promise<void> {
    for (const [deviceId, view] of this.options.views) {
      const streams = new Set<ServerResponse>();
      this.streams.set(deviceId, streams);
      const push = (snapshot: DeviceSnapshot) => {
        for (const res of streams) sendSnapshot(res, snapshot);
      };
      this.unsubscribes.push(listen<DeviceViewEvents>(view, { change: push }));
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        reject(
          new Error(
            `the web display cannot listen on ${this.options.host}:${this.options.port}: ${error.message}`,
            {
              cause: error,
            },
          ),
        );
      };
      this.server.once("error", onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    // Proxies and NAT boxes drop connections that stay silent; a comment line keeps the stream alive.
    this.heartbeat = setInterval(() => {
      for (const streams of this.streams.values()) for (const res of streams) res.write(": keep-alive\n\n");
    }, this.options.heartbeatMs ?? 15_000);
    this.log.info({ url: this.url, devices: [...this.options.views.keys()] }, "web display listening");
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    for (const streams of this.streams.values()) for (const res of streams) res.end();
    this.streams.clear();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res
        .writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" })
        .end("GET only\n");
      return;
    }
    const path = new URL(req.url ?? "/", "http://display").pathname;
    const ids = [...this.options.views.keys()];
    if (path === "/") {
      // One device: straight to its page, so a kiosk can simply point at the server.
      if (ids.length === 1)
        res.writeHead(302, { location: `/devices/${encodeURIComponent(ids[0] ?? "")}` }).end();
      else send(res, 200, "text/html; charset=utf-8", indexPage(ids));
      return;
    }
    if (path === "/assets/display.css") return send(res, 200, "text/css; charset=utf-8", STYLE_CSS);
    if (path === "/assets/display.js") return send(res, 200, "text/javascript; charset=utf-8", CLIENT_JS);
    // Browsers ask for it on their own; an empty answer keeps a 404 out of the kiosk's console.
    if (path === "/favicon.ico") return void res.writeHead(204, { "cache-control": "max-age=86400" }).end();
    if (path === "/healthz") return send(res, 200, "application/json", JSON.stringify(this.health()));
    const match = DEVICE_PATH.exec(path);
    const deviceId = match ? safeDecode(match[1] ?? "") : undefined;
    const view = deviceId === undefined ? undefined : this.options.views.get(deviceId);
    if (!view || deviceId === undefined) {
      send(res, 404, "text/html; charset=utf-8", notFoundPage(ids));
      return;
    }
    if (match?.[2]) this.openStream(req, res, deviceId, view);
    else send(res, 200, "text/html; charset=utf-8", devicePage(deviceId));
  }

  private openStream(req: IncomingMessage, res: ServerResponse, deviceId: string, view: DeviceView): void {
    const streams = this.streams.get(deviceId);
    if (!streams) return void res.writeHead(503).end();
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      // nginx and similar proxies buffer responses unless told not to.
      "x-accel-buffering": "no",
    });
    // The snapshot right away: a page opened late, or back after a restart, is right without waiting for news.
    res.write(`retry: ${this.options.reconnectMs ?? 2_000}\n\n`);
    sendSnapshot(res, view.snapshot());
    streams.add(res);
    res.once("close", () => streams.delete(res));
  }

  private health(): { devices: Record<string, { brokerConnected: boolean; pages: number }> } {
    const devices: Record<string, { brokerConnected: boolean; pages: number }> = {};
    for (const [id, view] of this.options.views) {
      devices[id] = {
        brokerConnected: view.snapshot().brokerConnected,
        pages: this.streams.get(id)?.size ?? 0,
      };
    }
    return { devices };
  }
}

function sendSnapshot(res: ServerResponse, snapshot: DeviceSnapshot): void {
  res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res
    .writeHead(status, { ...SECURITY_HEADERS, "content-type": type, "cache-control": "no-cache" })
    .end(res.req.method === "HEAD" ? undefined : body);
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
