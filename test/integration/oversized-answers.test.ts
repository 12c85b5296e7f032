import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { generate } from "selfsigned";
import { describe, expect, it } from "vitest";
import { eventually } from "../helpers/agent-process.js";
import { useTestBed } from "../helpers/fixture.js";

const MiB = 1024 * 1024;
/** What the provider in the finding sent as its discovery document. */
const ANSWER_BYTES = 200 * MiB;

/**
 * A provider whose every answer is 200 MiB of JSON-looking bytes, chunked (no Content-Length to refuse it by),
 * written only as fast as the client reads; it counts what the client took before hanging up.
 */
async function floodingProvider(dir: string) {
  const tls = await generate([{ name: "commonName", value: "127.0.0.1" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
  });
  const sent: number[] = [];
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const server: Server = createServer({ key: tls.private, cert: tls.cert }, (req, res) => {
    const index = sent.push(0) - 1;
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    res.write('{"issuer":"');
    const pump = () => {
      while (!res.destroyed && (sent[index] ?? 0) < ANSWER_BYTES) {
        sent[index] = (sent[index] ?? 0) + chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      if (!res.destroyed) res.end('"}');
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const caFile = join(dir, `flooding-${(server.address() as AddressInfo).port}.pem`);
  await writeFile(caFile, tls.cert);
  return {
    authority: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    caFile,
    /** Bytes written into each response so far (the socket's buffers hold some the client never read). */
    sent: () => [...sent],
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Peak resident memory of a process, in bytes (Linux). */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

describe("an answer over its size bound is not read whole (shipped bundle)", () => {
  const used = useTestBed();
  const { bed } = used;

  it("a 200 MiB discovery answer is cut at 1 MiB, with bounded memory and one clear line", async () => {
    const provider = await floodingProvider(bed.stateDir);
    used.afterThisTest(() => provider.close());
    const agent = await used.startAgent({
      EDGE_SIGNIN_AUTHORITY: provider.authority,
      EDGE_SIGNIN_IDP_CA_FILE: provider.caFile,
    });

    const state = await agent.state((s) => s.state === "error");
    expect(state).toMatchObject({ reason: "server" });
    expect(state.message).toContain("is larger than 1 MiB (no real one is); not read further");
    // It tries again (the provider may mend), and says so once, not at every attempt.
    await eventually(() => provider.sent().length >= 3, "three attempts", 30_000);
    const pid = agent.cli.child.pid ?? 0;
    expect(await peakRss(pid)).toBeLessThan(200 * MiB);
    for (const bytes of provider.sent()) expect(bytes).toBeLessThan(32 * MiB);
    // One line per attempt, the reason in it; no stack trace, no crash.
    const lines = agent.logLines();
    const naming = lines.filter((line) => String(line["msg"]).includes("larger than 1 MiB"));
    expect(naming.length).toBeGreaterThanOrEqual(1);
    expect(naming.length).toBeLessThanOrEqual(provider.sent().length);
    expect(new Set(naming.map((line) => `${String(line["level"])} ${String(line["msg"])}`))).toStrictEqual(
      new Set([`40 sign-in failed: ${state.message ?? ""}`]),
    );
    expect(lines.filter((line) => Number(line["level"]) >= 50)).toStrictEqual([]);
    expect(agent.cli.child.exitCode).toBe(null);
  });
});
