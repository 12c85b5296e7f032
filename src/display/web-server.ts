import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { DISPLAY_DEFAULTS } from "../config/index.js";
import { listen } from "../util/emitter.js";
import { AllowedHosts } from "../http/allowed-hosts.js";
import { clientKey, FairShare, shareConnections } from "../http/fair-share.js";
import { closeHttp, listenHttp, serverUrl } from "../http/listen.js";
import { refusedMethod, send, SECURITY_HEADERS } from "../http/respond.js";
import type { DeviceSnapshot, DeviceView, DeviceViewEvents } from "./device-view.js";
import type { Locale } from "../i18n/catalogue.js";
import { chooseLocale } from "../i18n/translate.js";
import { screenFor, type ScreenContext } from "./screen.js";
import { CLIENT_JS } from "./web/client.js";
import { devicePage, indexPage, notFoundPage } from "./web/pages.js";
import { STYLE_CSS, themeCss, type Theme } from "./web/style.js";

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
  /** Host names answered besides IPs, loopback and this machine's (see {@link AllowedHosts}); `*`: any. */
  readonly allowedHosts?: readonly string[];
  /**
   * Most bytes waiting to be sent to one page. A page that does not read (a hung TV, a client that opens the
   * stream and never reads) is dropped beyond it; a live page catches up on its next connect. Default 1 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Most open event streams, all devices together (see {@link FairShare}). Default 256. */
  readonly maxStreams?: number;
  /**
   * Most open event streams of one client (an IPv4 address, or an IPv6 /64); its oldest is closed for a new one.
   * Default 16: a TV needs one per device page it shows.
   */
  readonly maxStreamsPerClient?: number;
  /** Most open connections of one client; beyond it its oldest is closed for the new one. Default 32. */
  readonly maxConnectionsPerClient?: number;
  /** Language, brand and wording; defaults: the browser's language, the device id as the product. */
  readonly presentation?: Presentation;
}

/** How the pages look and speak. */
export interface Presentation {
  /** A BCP 47 tag, or `auto` for each browser's `Accept-Language` (a page's `?lang=` wins over both). */
  readonly language?: string;
  /** The product people sign in to, in the headline; default: the device id. */
  readonly productName?: string;
  /** Shown instead of the verification URI's text (the QR code still holds the full one). */
  readonly shortUrl?: string;
  /** How long without a word from a device before its screen says what to check, in ms. Default: DISPLAY_NEVER_HEARD_SECONDS's. */
  readonly neverHeardAfterMs?: number;
  readonly theme?: Theme;
  /** The logo in the header: its bytes and media type (SVG, PNG or WebP). */
  readonly logo?: { readonly type: string; readonly body: Buffer };
}

const DEVICE_PATH = /^\/devices\/([^/]+)(\/events)?$/;

/**
 * The web display: serves one page per device and pushes the device's snapshot to every open page over
 * Server-Sent Events. The browser never talks to the broker, so it holds no broker credentials and the broker
 * needs no WebSocket listener.
 */
export class WebDisplayServer {
  private readonly server: Server;
  /** Each device's open event streams, with the language each page speaks. */
  private readonly streams = new Map<string, Map<ServerResponse, Locale>>();
  private readonly startedAt = Date.now();
  private readonly unsubscribes: Array<() => void> = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly allowedHosts: AllowedHosts;
  private readonly maxBufferedBytes: number;
  private readonly maxStreams: number;
  /** Event streams (and TCP connections), shared fairly between clients: none can take every place from the TV. */
  private readonly streamShares: FairShare<ServerResponse>;
  private refusedConnections = 0;
  private dropped = 0;
  private refusedStreams = 0;
  private readonly refusedHosts = new Set<string>();

  constructor(private readonly options: WebDisplayOptions) {
    this.log = options.logger.child({ module: "web-display" });
    this.allowedHosts = new AllowedHosts(options.allowedHosts ?? [], options.host);
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
    this.maxStreams = options.maxStreams ?? 256;
    this.streamShares = new FairShare(options.maxStreamsPerClient ?? 16, this.maxStreams);
    this.server = createServer((req, res) => this.handle(req, res));
    // Room for every page's stream and as many page and asset loads; headers in 10 s, a request in 30 s.
    shareConnections(
      this.server,
      {
        perClient: options.maxConnectionsPerClient ?? 32,
        overall: Math.max(64, this.maxStreams * 2),
      },
      (client) => this.refused("connection", client),
    );
  }

  /** The first, then every hundredth: a client that keeps coming back cannot fill the log. */
  private refused(what: "connection" | "page", client: string): void {
    this.refusedConnections += 1;
    if (this.refusedConnections === 1 || this.refusedConnections % 100 === 0)
      this.log.warn(
        { client, refused: this.refusedConnections, what },
        `closed a ${what}: that client holds more than its share (EDGE_SIGNIN_DISPLAY_HOST can keep the display off other networks)`,
      );
  }

  /** `http://host:port` the server listens on; valid after start(). */
  get url(): string {
    return serverUrl(this.server, "the web display");
  }

  async start(): Promise<void> {
    for (const [deviceId, view] of this.options.views) {
      const streams = new Map<ServerResponse, Locale>();
      this.streams.set(deviceId, streams);
      const push = (snapshot: DeviceSnapshot) => {
        // Serialised once per language for every page: each stream queues the same buffer, not a copy.
        const frames = new Map<Locale, Buffer>();
        for (const [res, locale] of streams) {
          let frame = frames.get(locale);
          if (!frame) frames.set(locale, (frame = this.frame(snapshot, locale)));
          this.send(res, frame, streams);
        }
      };
      this.unsubscribes.push(listen<DeviceViewEvents>(view, { change: push }));
    }
    await listenHttp(this.server, this.options.host, this.options.port, "the web display");
    // Proxies and NAT boxes drop connections that stay silent; a comment line keeps the stream alive.
    this.heartbeat = setInterval(() => {
      for (const streams of this.streams.values())
        for (const res of streams.keys()) this.send(res, KEEP_ALIVE, streams);
    }, this.options.heartbeatMs ?? 15_000);
    this.log.info({ url: this.url, devices: [...this.options.views.keys()] }, "web display listening");
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    for (const streams of this.streams.values()) for (const res of streams.keys()) res.end();
    this.streams.clear();
    await closeHttp(this.server);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (!this.allowedHosts.allows(req.headers.host)) {
      // Once per name (for the first 64), so a scanner cannot fill the log.
      const host = req.headers.host?.slice(0, 256) ?? "";
      if (this.refusedHosts.size < 64 && !this.refusedHosts.has(host)) {
        this.refusedHosts.add(host);
        this.log.warn(
          { host },
          "refused a request for a host name the web display does not answer to (add it to EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS if it is yours)",
        );
      }
      // Plain text (and nosniff): the name is echoed for the administrator who typed it, never interpreted.
      send(
        res,
        403,
        "text/plain; charset=utf-8",
        `This display does not answer to the name ${JSON.stringify(host.slice(0, 100))}. ` +
          "If it is yours, add it to EDGE_SIGNIN_DISPLAY_ALLOWED_HOSTS (DNS rebinding protection).\n",
      );
      return;
    }
    if (refusedMethod(req, res)) return;
    const { pathname: path, searchParams: query } = new URL(req.url ?? "/", "http://display");
    const locale = chooseLocale(
      query.get("lang") ?? this.options.presentation?.language,
      req.headers["accept-language"],
    );
    const ids = [...this.options.views.keys()];
    if (path === "/") {
      // One device: straight to its page, so a kiosk can simply point at the server.
      if (ids.length === 1)
        res.writeHead(302, { location: `/devices/${encodeURIComponent(ids[0] ?? "")}` }).end();
      else send(res, 200, "text/html; charset=utf-8", indexPage(ids, locale));
      return;
    }
    if (path === "/assets/display.css") return send(res, 200, "text/css; charset=utf-8", STYLE_CSS);
    if (path === "/assets/theme.css") return send(res, 200, "text/css; charset=utf-8", this.themeCss);
    const logo = this.options.presentation?.logo;
    if (path === "/assets/logo" && logo) return send(res, 200, logo.type, logo.body);
    if (path === "/assets/display.js") return send(res, 200, "text/javascript; charset=utf-8", CLIENT_JS);
    // Browsers ask for it on their own; an empty answer keeps a 404 out of the kiosk's console.
    if (path === "/favicon.ico") return void res.writeHead(204, { "cache-control": "max-age=86400" }).end();
    if (path === "/healthz") return send(res, 200, "application/json", JSON.stringify(this.health()));
    const match = DEVICE_PATH.exec(path);
    const deviceId = match ? safeDecode(match[1] ?? "") : undefined;
    const view = deviceId === undefined ? undefined : this.options.views.get(deviceId);
    if (!view || deviceId === undefined) {
      send(res, 404, "text/html; charset=utf-8", notFoundPage(ids, locale));
      return;
    }
    if (match?.[2]) this.openStream(req, res, deviceId, view, locale);
    else
      send(
        res,
        200,
        "text/html; charset=utf-8",
        devicePage(deviceId, locale, { logo: logo !== undefined, product: this.product() ?? deviceId }),
      );
  }

  private openStream(
    req: IncomingMessage,
    res: ServerResponse,
    deviceId: string,
    view: DeviceView,
    locale: Locale,
  ): void {
    const streams = this.streams.get(deviceId);
    if (!streams) return void res.writeHead(503).end();
    const client = clientKey(req.socket.remoteAddress);
    const decision = this.streamShares.admit(client, res);
    if (decision.outcome === "refuse") {
      this.refusedStreams += 1;
      if (this.refusedStreams === 1 || this.refusedStreams % 100 === 0)
        this.log.warn(
          { deviceId, streams: this.maxStreams, refused: this.refusedStreams },
          "refused a page: too many open pages",
        );
      res.writeHead(503, { "retry-after": "10" }).end();
      return;
    }
    // Its own oldest page, or the oldest of the client that holds the most: closed, its place is this one's.
    if (decision.outcome === "evict") {
      this.refused("page", client);
      decision.evict.destroy();
    }
    res.once("close", () => this.streamShares.release(client, res));
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
    res.write(this.frame(view.snapshot(), locale));
    streams.set(res, locale);
    res.once("close", () => streams.delete(res));
  }

  /** Queues a frame for one page, or drops the page when it has not read what it was already sent. */
  private send(res: ServerResponse, frame: Buffer, streams: Map<ServerResponse, Locale>): void {
    if (res.writableLength + frame.length <= this.maxBufferedBytes) {
      res.write(frame);
      return;
    }
    streams.delete(res);
    res.destroy();
    this.dropped += 1;
    // The first, then every hundredth: a client that keeps coming back cannot fill the log.
    if (this.dropped === 1 || this.dropped % 100 === 0)
      this.log.warn(
        { limit: this.maxBufferedBytes, dropped: this.dropped },
        "dropped a page that does not read its updates",
      );
  }

  /** One SSE frame: the snapshot and the screen it makes, in the page's language. */
  private frame(snapshot: DeviceSnapshot, locale: Locale): Buffer {
    const context: ScreenContext = {
      locale,
      product: this.product(),
      shortUrl: this.options.presentation?.shortUrl,
      watchingSince: this.startedAt,
      neverHeardAfterMs: this.options.presentation?.neverHeardAfterMs ?? DISPLAY_DEFAULTS.neverHeardAfterMs,
    };
    const screen = screenFor(snapshot, context);
    return Buffer.from(`event: snapshot\ndata: ${JSON.stringify({ ...snapshot, screen })}\n\n`);
  }

  /** The product named in the headline; none configured: a plain "Sign in" (the header shows the device id). */
  private product(): string | undefined {
    return this.options.presentation?.productName;
  }

  private get themeCss(): string {
    return themeCss(this.options.presentation?.theme);
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

const KEEP_ALIVE = Buffer.from(": keep-alive\n\n");

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
