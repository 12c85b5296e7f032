import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Everything a page needs comes from this server (no CDN, no external font): edge networks are often offline.
 * The policy keeps the page to its own origin, with the QR code as a data: image.
 */
export const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

/** Answers with the pages' security headers, no caching, and no body to a HEAD request. */
export function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res
    .writeHead(status, { ...SECURITY_HEADERS, "content-type": type, "cache-control": "no-cache" })
    .end(res.req.method === "HEAD" ? undefined : body);
}

/** Answers 405 to anything but GET and HEAD (the pages are read-only) and returns true when it did. */
export function refusedMethod(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === "GET" || req.method === "HEAD") return false;
  res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("GET only\n");
  return true;
}
