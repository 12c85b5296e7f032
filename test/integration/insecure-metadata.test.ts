import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { generate } from "selfsigned";
import { describe, expect, it } from "vitest";
import { discover, METADATA_FILE } from "../../src/auth/discovery.js";
import { NetworkClient } from "../../src/auth/network-client.js";
import { signIn } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

/** A plain-HTTP listener on loopback that records every request (and every connection) it gets. */
async function plainListener(): Promise<{
  origin: string;
  seen: () => string[];
  close: () => Promise<void>;
}> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method ?? "GET"} ${req.url ?? ""}`);
    res.writeHead(500).end();
  });
  server.on("connection", () => seen.push("connection"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen: () => [...seen],
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("no secret over plain HTTP, whatever names the endpoint", () => {
  const used = useTestBed();
  const { bed } = used;

  it("a cached authority-metadata.json naming http:// endpoints on loopback is discarded with one warning, and fetched again (shipped bundle)", async () => {
    const listener = await plainListener();
    used.afterThisTest(() => listener.close());
    const env = bed.env();
    const first = used.startAgent(env);
    await signIn(used, await first, "alice");
    expect(await (await first).stop()).toBe(0);

    // Fresh, for the right discovery URL, every endpoint moved to cleartext on a local port.
    const path = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", METADATA_FILE);
    const cached = JSON.parse(await readFile(path, "utf8")) as { document: Record<string, unknown> };
    for (const [name, value] of Object.entries(cached.document))
      if (name.endsWith("_endpoint") || name === "jwks_uri")
        cached.document[name] = String(value).replace(/^https:\/\/[^/]+/, listener.origin);
    await writeFile(path, JSON.stringify({ ...cached, fetchedAt: Date.now() }), { mode: 0o600 });

    const again = await used.startAgent({
      EDGE_SIGNIN_DEVICE_ID: env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
      EDGE_SIGNIN_STATE_DIR: env["EDGE_SIGNIN_STATE_DIR"] ?? "",
    });
    // The session is renewed with the provider's real (https) endpoints: the refresh token went there only.
    expect(await again.event("authenticated")).toMatchObject({ method: "refresh", verified: true });
    expect(listener.seen()).toStrictEqual([]);
    const warnings = again
      .logLines()
      .filter((line) => String(line["msg"]).includes("cached provider metadata"));
    expect(warnings.map((line) => [line["level"], line["field"], line["scheme"]])).toStrictEqual([
      [40, "authorization_endpoint", "http"],
    ]);
    const rewritten = JSON.parse(await readFile(path, "utf8")) as { document: Record<string, string> };
    expect(new URL(rewritten.document["token_endpoint"] ?? "").protocol).toBe("https:");
  });

  it("a discovery answer redirecting to http:// is not followed", async () => {
    const listener = await plainListener();
    used.afterThisTest(() => listener.close());
    const tls = await generate([{ name: "commonName", value: "127.0.0.1" }], {
      keyType: "ec",
      algorithm: "sha256",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
    });
    const front = createHttpsServer({ key: tls.private, cert: tls.cert }, (req, res) =>
      res.writeHead(302, { location: `${listener.origin}${req.url ?? "/"}` }).end(),
    );
    await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
    used.afterThisTest(() => new Promise<void>((resolve) => front.close(() => resolve())));
    const http = new NetworkClient({ ca: tls.cert, timeoutMs: 5_000 });
    used.afterThisTest(() => http.close());
    const url = `https://127.0.0.1:${(front.address() as AddressInfo).port}/.well-known/openid-configuration`;

    await expect(discover(url, http, join(bed.stateDir, "redirect"))).rejects.toThrow(
      `discovery document ${url} answered HTTP 302`,
    );
    expect(listener.seen()).toStrictEqual([]);
  });
});
