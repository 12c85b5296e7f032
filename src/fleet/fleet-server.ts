import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { AllowedHosts } from "../http/allowed-hosts.js";
import { shareConnections } from "../http/fair-share.js";
import { closeHttp, listenHttp, serverUrl } from "../http/listen.js";
import { refusedMethod, send } from "../http/respond.js";
import { fleetSummary, type FleetSnapshot } from "./fleet.js";

export interface FleetServerOptions {
  readonly host: string;
  /** 0 picks a free port; {@link FleetServer.url} tells which. */
  readonly port: number;
  /** Host names answered besides IPs, loopback and this machine's (see {@link AllowedHosts}); `*`: any. */
  readonly allowedHosts: readonly string[];
  /** The fleet as it is now. */
  readonly snapshot: () => FleetSnapshot;
  readonly logger: Logger;
  /**
   * Most open connections of one client (an IPv4 address, or an IPv6 /64); its oldest is closed for a new one.
   * Default 32: a browser opens six at most.
   */
  readonly maxConnectionsPerClient?: number;
  /** Most open connections, all clients together; the client holding most gives way to a newcomer. Default 256. */
  readonly maxConnections?: number;
}

/** The page reloads itself this often (a meta refresh: no script, nothing for the page's policy to allow). */
const REFRESH_SECONDS = 5;

const STYLE = `body{font:16px/1.4 system-ui,sans-serif;margin:2rem;background:#111;color:#eee}
table{border-collapse:collapse}th,td{padding:.3rem .9rem;text-align:left;border-bottom:1px solid #333}
td.online{color:#7d7}td.offline{color:#f77}p{color:#aaa}`;

/**
 * `edge-signin fleet --web`: the fleet view as a web page (`/fleet`) and as JSON (`/fleet.json`), from the same
 * snapshot as the terminal's. Same host check, security headers and fair shares of connections as the web display,
 * so one machine holding idle connections cannot take the page from everyone else.
 */
export class FleetServer {
  private readonly server: Server;
  private readonly allowedHosts: AllowedHosts;
  private refusedConnections = 0;

  constructor(private readonly options: FleetServerOptions) {
    this.allowedHosts = new AllowedHosts(options.allowedHosts, options.host);
    this.server = createServer((req, res) => this.handle(req, res));
    shareConnections(
      this.server,
      { perClient: options.maxConnectionsPerClient ?? 32, overall: options.maxConnections ?? 256 },
      (client) => this.refused(client),
    );
  }

  /** The first, then every hundredth: a client that keeps coming back cannot fill the log. */
  private refused(client: string): void {
    this.refusedConnections += 1;
    if (this.refusedConnections === 1 || this.refusedConnections % 100 === 0)
      this.options.logger.warn(
        { client, refused: this.refusedConnections },
        "closed a connection to the fleet page: that client holds more than its share (EDGE_SIGNIN_DISPLAY_HOST can keep the page off other networks)",
      );
  }

  /** `http://host:port` the server listens on; valid after start(). */
  get url(): string {
    return serverUrl(this.server, "the fleet page");
  }

  async start(): Promise<void> {
    await listenHttp(this.server, this.options.host, this.options.port, "the fleet page");
    this.options.logger.info({ url: `${this.url}/fleet` }, "fleet page listening");
  }

  async stop(): Promise<void> {
    await closeHttp(this.server);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (!this.allowedHosts.allows(req.headers.host)) {
      send(
        res,
        403,
        "text/plain; charset=utf-8",
        "This page does not answer to that host name (DNS rebinding protection).\n",
      );
      return;
    }
    if (refusedMethod(req, res)) return;
    const { pathname } = new URL(req.url ?? "/", "http://fleet");
    if (pathname === "/") res.writeHead(302, { location: "/fleet" }).end();
    else if (pathname === "/fleet")
      send(res, 200, "text/html; charset=utf-8", fleetPage(this.options.snapshot()));
    else if (pathname === "/fleet.json")
      send(res, 200, "application/json", JSON.stringify(this.options.snapshot()));
    else if (pathname === "/fleet.css") send(res, 200, "text/css; charset=utf-8", STYLE);
    else send(res, 404, "text/plain; charset=utf-8", "Not found\n");
  }
}

/** The fleet as an HTML table; every text is escaped (ids and times are validated already: defence in depth). */
export function fleetPage(snapshot: FleetSnapshot): string {
  const rows = snapshot.devices
    .map(
      (d) =>
        `<tr><td>${escape(d.deviceId)}</td><td class="${d.availability ?? ""}">${escape(d.availability ?? "-")}</td>` +
        `<td>${escape(d.state ?? "-")}</td><td>${time(d.since)}</td><td>${time(d.lastSignIn)}</td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<title>edge-signin fleet</title><link rel="stylesheet" href="/fleet.css"></head>
<body><h1>Fleet</h1><p id="summary">${escape(fleetSummary(snapshot.counts))}</p>
<table><thead><tr><th>Device</th><th>Availability</th><th>State</th><th>Since</th><th>Last sign-in</th></tr></thead>
<tbody>
${rows}
</tbody></table></body></html>
`;
}

function time(iso: string | null): string {
  return iso ? `<time datetime="${escape(iso)}">${escape(iso.replace(/\.\d+Z$/, "Z"))}</time>` : "-";
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
