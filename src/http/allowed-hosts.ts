import { hostname } from "node:os";
import { isIP } from "node:net";

/**
 * Which `Host` headers the web display answers, against DNS rebinding: a page on an attacker's site whose name
 * they re-point at the display's address would otherwise read the display (the code, who signed in) with the
 * visitor's browser. A browser always sends the name it resolved, so answering only to names we know stops it.
 * As in Vite's `server.allowedHosts` and webpack-dev-server's `allowedHosts: "auto"`: IP addresses, `localhost`
 * (and `*.localhost`), this machine's name (and `.local`), the listen address, and what is configured.
 */
export class AllowedHosts {
  private readonly names: ReadonlySet<string>;
  private readonly any: boolean;

  /**
   * @param configured lower-case names from `DISPLAY_ALLOWED_HOSTS`; `*` allows any host.
   * @param listenHost the address or name the server listens on.
   */
  constructor(configured: readonly string[], listenHost: string) {
    this.any = configured.includes("*");
    const machine = hostname().toLowerCase();
    this.names = new Set([
      ...configured,
      "localhost",
      machine,
      `${machine.split(".")[0] ?? machine}.local`,
      listenHost.toLowerCase(),
    ]);
  }

  /**
   * Whether a request with this `Host` header may be answered. A request with none (HTTP/1.0 tools) may: a
   * browser, the only thing DNS rebinding can use, always sends one.
   */
  allows(host: string | undefined): boolean {
    if (this.any || host === undefined) return true;
    const name = hostName(host);
    if (name === undefined) return false;
    return isIP(name) !== 0 || name.endsWith(".localhost") || this.names.has(name);
  }
}

/** The name in a `Host` header, lower case, without port, brackets or the root's trailing dot. */
function hostName(host: string): string | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/i.exec(host.trim());
  const name = (match?.[1] ?? match?.[2])?.toLowerCase().replace(/\.$/, "");
  return name === "" ? undefined : name;
}
