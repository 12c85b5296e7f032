/**
 * A thin HTTPS front between the agent and the dev identity provider that can make the next token polls fail,
 * the way a provider or a network in trouble does, and otherwise passes everything through unchanged.
 *
 * The agent's AUTHORITY points at the front. The provider's discovery document names its endpoints by the
 * provider's own address, so the front rewrites those URLs to itself (never the `issuer`, which the ID token
 * must match). The provider's pages (`verification_uri`) stay on the provider, so the person signs in there.
 */
import { writeFile } from "node:fs/promises";
import { createServer, request, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { generate } from "selfsigned";
import type { DevIdentityProvider } from "../../src/dev/identity-provider.js";

/**
 * What a failing request gets: a 503 with an OAuth-style JSON body or a load balancer's HTML page, a TCP reset, no
 * answer, or a gateway's own answer (Azure API Management, an nginx auth proxy, a WAF): any status, any body.
 */
export type Fault = "503-json" | "503-html" | "reset" | "hang" | GatewayAnswer;

export interface GatewayAnswer {
  readonly status: number;
  readonly body: string;
  /** Default application/json. */
  readonly contentType?: string;
}

/** Gateway answers that are no OAuth answer, at each status gateways were seen to send them. */
export const GATEWAY_ANSWERS: readonly GatewayAnswer[] = [
  { status: 200, body: "{}" },
  { status: 401, body: JSON.stringify({ message: "Unauthorized" }) },
  { status: 403, body: JSON.stringify({ message: "Forbidden" }) },
  { status: 403, body: "<html><body>Request blocked</body></html>", contentType: "text/html" },
  { status: 429, body: JSON.stringify({ message: "Too Many Requests" }) },
  { status: 503, body: JSON.stringify({ message: "Service Unavailable" }) },
  { status: 504, body: JSON.stringify({ message: "Gateway Timeout" }) },
];

export interface FaultyFront {
  /** `https://localhost:{port}/`: the agent's AUTHORITY. */
  readonly authority: string;
  /** PEM file trusting the front (and the provider), for EDGE_SIGNIN_IDP_CA_FILE. */
  readonly caFile: string;
  /** The next device-code polls get these faults, in order; resolves once all of them were served. */
  failPolls(faults: readonly Fault[]): Promise<void>;
  /** The next refresh-token requests get these faults, in order; resolves once all of them were served. */
  failRefreshes(faults: readonly Fault[]): Promise<void>;
  /** Device authorization answers that passed through are edited by `edit` (undefined: as the provider sent them). */
  editDeviceAuthorization(edit: ((body: Record<string, unknown>) => void) | undefined): void;
  /** Device-code polls that reached the front, failed or passed through. */
  polls(): number;
  /** Polls passed through to the provider. */
  passedPolls(): number;
  close(): Promise<void>;
}

const DEVICE_CODE_GRANTS = new Set(["device_code", "urn:ietf:params:oauth:grant-type:device_code"]);

export async function startFaultyFront(idp: DevIdentityProvider, dir: string): Promise<FaultyFront> {
  const tls = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  const upstream = new URL(idp.issuer);
  const sockets = new Set<Socket>();
  const faults: Fault[] = [];
  let allServed: (() => void) | undefined;
  const refreshFaults: Fault[] = [];
  let allRefreshesServed: (() => void) | undefined;
  let editDeviceAuthorization: ((body: Record<string, unknown>) => void) | undefined;
  let polls = 0;
  let passed = 0;

  const server: Server = createServer({ key: tls.private, cert: tls.cert }, (req, res) => {
    readBody(req).then(
      (body) => {
        const grantType = new URLSearchParams(body).get("grant_type") ?? "";
        const isPoll = req.method === "POST" && DEVICE_CODE_GRANTS.has(grantType);
        if (req.method === "POST" && grantType === "refresh_token" && refreshFaults.length > 0) {
          const fault = refreshFaults.shift() as Fault;
          if (refreshFaults.length === 0) allRefreshesServed?.();
          inject(fault, req, res);
          return;
        }
        if (isPoll) {
          polls += 1;
          const fault = faults.shift();
          if (faults.length === 0) allServed?.();
          if (fault) {
            inject(fault, req, res);
            return;
          }
          passed += 1;
        }
        forward(req, res, body);
      },
      () => res.destroy(),
    );
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // The authority's host, so every endpoint MSAL is handed is on the host it was configured with.
  const origin = `https://localhost:${port}`;
  const caFile = join(dir, `faulty-front-${port}.pem`);
  await writeFile(caFile, `${tls.cert}\n${idp.caPem}`);

  function forward(req: IncomingMessage, res: ServerResponse, body: string): void {
    const headers = { ...req.headers, host: upstream.host };
    delete headers["content-length"];
    const isDiscovery = (req.url ?? "").includes("/.well-known/openid-configuration");
    const edit = /devicecode$|device\/auth$/.test(new URL(req.url ?? "/", origin).pathname)
      ? editDeviceAuthorization
      : undefined;
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...headers, "content-length": Buffer.byteLength(body) },
        ca: idp.caPem,
      },
      (answer) => {
        // Only a document is rewritten: a 404 for a location the provider does not serve passes as it is.
        if ((!isDiscovery && !edit) || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        readBody(answer).then(
          (text) => {
            const rewritten = edit ? editJson(text, edit) : rewriteDiscovery(text, upstream.origin, origin);
            const answerHeaders = {
              ...answer.headers,
              "content-length": String(Buffer.byteLength(rewritten)),
            };
            delete answerHeaders["etag"];
            res.writeHead(answer.statusCode ?? 502, answerHeaders).end(rewritten);
          },
          () => res.destroy(),
        );
      },
    );
    out.on("error", () => res.destroy());
    out.end(body);
  }

  return {
    authority: `https://localhost:${port}/`,
    caFile,
    failPolls(next) {
      faults.push(...next);
      return new Promise<void>((resolve) => {
        allServed = resolve;
        if (faults.length === 0) resolve();
      });
    },
    failRefreshes(next) {
      refreshFaults.push(...next);
      return new Promise<void>((resolve) => {
        allRefreshesServed = resolve;
        if (refreshFaults.length === 0) resolve();
      });
    },
    editDeviceAuthorization(edit) {
      editDeviceAuthorization = edit;
    },
    polls: () => polls,
    passedPolls: () => passed,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function inject(fault: Fault, req: IncomingMessage, res: ServerResponse): void {
  if (typeof fault === "object") {
    res.writeHead(fault.status, { "content-type": fault.contentType ?? "application/json" }).end(fault.body);
    return;
  }
  switch (fault) {
    case "503-json":
      res
        .writeHead(503, { "content-type": "application/json", "retry-after": "1" })
        .end(JSON.stringify({ error: "temporarily_unavailable", error_description: "try again later" }));
      return;
    case "503-html":
      res
        .writeHead(503, { "content-type": "text/html" })
        .end("<html><body><h1>503 Service Unavailable</h1></body></html>");
      return;
    case "reset":
      // A TCP RST, as a dropped Wi-Fi or a restarting load balancer gives. The RST must come from the TCP
      // socket under the TLS one (Node keeps it as `_parent`); a TLS socket cannot send one itself.
      ((req.socket as Socket & { _parent?: Socket })._parent ?? req.socket).resetAndDestroy();
      return;
    case "hang":
      // Never answer: only the agent's own request timeout ends this one (close() ends the socket).
      return;
  }
}

function editJson(text: string, edit: (body: Record<string, unknown>) => void): string {
  const body = JSON.parse(text) as Record<string, unknown>;
  edit(body);
  return JSON.stringify(body);
}

/** Endpoint URLs on the provider's origin now point at the front; the issuer stays the provider's. */
function rewriteDiscovery(text: string, from: string, to: string): string {
  const document = JSON.parse(text) as Record<string, unknown>;
  for (const [key, value] of Object.entries(document)) {
    if (key !== "issuer" && typeof value === "string" && value.startsWith(from))
      document[key] = to + value.slice(from.length);
  }
  return JSON.stringify(document);
}

async function readBody(stream: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
