import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { generate } from "selfsigned";
import { Agent, request } from "undici";
import type { DevIdentityProvider } from "../../src/dev/identity-provider.js";

const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

/** One device-code poll of the token endpoint, as the front saw it. */
export interface Poll {
  /** `performance.now()` when the request arrived. */
  readonly at: number;
  /** Kept in memory for comparing polls; never printed. */
  readonly deviceCode: string;
  readonly answer: "slow_down" | "forwarded";
}

export interface SlowDownFront {
  /** Authority for the agent: discovery and token requests go through the front. */
  readonly authority: string;
  /** PEM file trusting both the front and the provider behind it (for EDGE_SIGNIN_IDP_CA_FILE). */
  readonly caFile: string;
  polls(): readonly Poll[];
  /** Resolves with poll number `index` (from 0) once it has arrived. */
  poll(index: number, timeoutMs?: number): Promise<Poll>;
  close(): Promise<void>;
}

/**
 * A thin HTTPS front before the development provider, for what oidc-provider defines but never sends:
 * it answers `slow_down` to the chosen device-code polls and passes every other request through as it is.
 * Only the discovery document is edited, to send token requests through the front; the device
 * authorization request and the person's pages go to the provider directly.
 */
export async function startSlowDownFront(
  idp: DevIdentityProvider,
  options: { slowDownPolls: readonly number[] },
): Promise<SlowDownFront> {
  // A CN of its own: OpenSSL finds a trust anchor by subject, and the provider's certificate says "localhost".
  const tls = await generate([{ name: "commonName", value: "slow-down front" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }],
  });
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-front-"));
  const caFile = join(dir, "ca.pem");
  await writeFile(caFile, `${tls.cert}\n${idp.caPem}`);
  const upstream = new Agent({ connect: { ca: idp.caPem } });

  const polls: Poll[] = [];
  const waiters = new Set<() => void>();
  let origin = "";

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const at = performance.now();
    const path = req.url ?? "/";
    const body = await readBody(req);
    const form = new URLSearchParams(body);
    if (req.method === "POST" && path.startsWith("/token") && form.get("grant_type") === DEVICE_CODE_GRANT) {
      const slowDown = options.slowDownPolls.includes(polls.length);
      polls.push({
        at,
        deviceCode: form.get("device_code") ?? "",
        answer: slowDown ? "slow_down" : "forwarded",
      });
      for (const wake of waiters) wake();
      if (slowDown) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "slow_down", error_description: "polling too fast" }));
        return;
      }
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && !["host", "connection", "content-length"].includes(name)) {
        headers[name] = value;
      }
    }
    const answer = await request(new URL(path, idp.issuer), {
      method: req.method as "GET" | "POST",
      headers,
      ...(req.method === "POST" ? { body } : {}),
      dispatcher: upstream,
    });
    let text = await answer.body.text();
    if (path.startsWith("/.well-known/openid-configuration") && answer.statusCode === 200) {
      const document = JSON.parse(text) as Record<string, unknown>;
      document["token_endpoint"] = `${origin}/token`;
      text = JSON.stringify(document);
    }
    res.writeHead(answer.statusCode, {
      "content-type": String(answer.headers["content-type"] ?? "application/json"),
    });
    res.end(text);
  };

  const server = createServer({ key: tls.private, cert: tls.cert }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(502).end(String(error));
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
  origin = `https://localhost:${port}`;

  return {
    authority: `${origin}/`,
    caFile,
    polls: () => polls,
    poll: (index, timeoutMs = 60_000) =>
      new Promise<Poll>((resolve, reject) => {
        const check = () => {
          const poll = polls[index];
          if (!poll) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(poll);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`poll ${index} did not come within ${timeoutMs} ms (${polls.length} seen)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
