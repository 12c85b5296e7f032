import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

interface Delivery {
  readonly status: number;
  readonly headers: IncomingMessage["headers"];
  readonly body: Record<string, unknown>;
  /** The signature checked out, with the receiver's own HMAC code (as the README shows it). */
  readonly signatureValid: boolean;
}

/**
 * A real HTTP receiver on loopback, verifying signatures the way the README tells receivers to.
 * `answer` decides the status of each request; `close()` and `listen()` again make it unreachable and back.
 */
class Receiver {
  readonly deliveries: Delivery[] = [];
  answer: (n: number) => number = () => 200;
  /** Requests for which this is true get no answer at all (a receiver that hangs). */
  hang: (n: number) => boolean = () => false;
  port = 0;
  private server: Server | undefined;
  private waiters: Array<() => void> = [];

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const n = this.deliveries.length;
        const status = this.hang(n) ? 0 : this.answer(n);
        this.deliveries.push({
          status,
          headers: req.headers,
          body: JSON.parse(raw) as Record<string, unknown>,
          signatureValid: verify(raw, req.headers),
        });
        if (status > 0) res.writeHead(status).end();
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/edge-signin`;
  }

  /** Resolves when `predicate` holds for the deliveries so far (checked after each request). */
  async until(predicate: (d: readonly Delivery[]) => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.deliveries)) {
      if (Date.now() > deadline)
        throw new Error(
          `receiver condition not met; got ${JSON.stringify(this.deliveries.map((d) => [d.status, d.body["type"]]))}`,
        );
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
  }

  /** Accepted deliveries, first time each id was accepted (receivers de-duplicate on `id`). */
  accepted(): Delivery[] {
    const seen = new Set<unknown>();
    return this.deliveries.filter((d) => {
      if (d.status < 200 || d.status >= 300 || seen.has(d.body["id"])) return false;
      seen.add(d.body["id"]);
      return true;
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** The receiver check the README shows: Standard Webhooks' reference library over the raw body. */
function verify(body: string, headers: IncomingMessage["headers"]): boolean {
  try {
    new Webhook(SECRET).verify(body, headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
}

describe("webhook reporter against a real HTTP receiver", () => {
  const { bed, probe, newAgent, afterThisTest } = useTestBed();
  let receiver: Receiver;
  let runs = 0;

  /** A receiver for this test, closed after it (and after the test's agents have stopped). */
  function newReceiver(): Receiver {
    const created = new Receiver();
    afterThisTest(() => created.close());
    return created;
  }

  function webhookEnv(extra: Record<string, string> = {}) {
    return {
      EDGE_SIGNIN_WEBHOOK_URL: receiver.url,
      EDGE_SIGNIN_WEBHOOK_SECRET: SECRET,
      EDGE_SIGNIN_WEBHOOK_TIMEOUT_SECONDS: "2",
      EDGE_SIGNIN_STATE_DIR: join(bed.stateDir, `webhook-${++runs}`),
      ...extra,
    };
  }

  it("delivers every event, signed and in order, after a 503 phase, an outage and an agent restart", async () => {
    receiver = newReceiver();
    receiver.answer = () => 503;
    await receiver.listen();
    // With a cache key, queued events (they hold claims) are sealed on disk like the token cache.
    const env = webhookEnv({ EDGE_SIGNIN_CACHE_KEY: randomBytes(32).toString("base64") });
    const config = bed.config(env);
    const topics = deviceTopics(config.topicPrefix, config.deviceId);
    const log = captureLogger();
    const first = newAgent(config, log.logger);
    await first.start();

    // The receiver fails with 503: the agent retries the same event (same id), with growing pauses.
    await receiver.until((d) => d.length >= 3);
    const retried = new Set(receiver.deliveries.map((d) => d.body["id"]));
    expect(retried.size).toBe(1);
    expect(receiver.deliveries.every((d) => d.signatureValid)).toBe(true);

    // Now nobody listens at all: connection refused. Meanwhile alice signs in.
    await receiver.close();
    const display = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "alice" });
    const mqttAuthenticated = (await probe.next(topics.event("authenticated"))).json<{
      id: string;
      at: string;
    }>();
    await expect.poll(() => log.text()).toContain("webhook receiver unreachable");

    // The agent restarts while the receiver is still down: the events wait on disk.
    await first.stop();
    const queued = (await readdir(join(config.stateDir, "webhook-queue"))).filter((n) => n.endsWith(".json"));
    expect(queued.length).toBeGreaterThanOrEqual(2);
    for (const name of queued) {
      const onDisk = await readFile(join(config.stateDir, "webhook-queue", name), "utf8");
      expect(onDisk).not.toMatch(/alice|code_issued|authenticated/);
    }

    receiver.answer = () => 200;
    await receiver.listen(); // same port: the receiver is back
    const restartedAt = Date.now();
    await newAgent(bed.config(env)).start();

    await receiver.until((d) => receiver.accepted().length >= 3 && d.length > 0);
    const accepted = receiver.accepted();
    expect(accepted.every((d) => d.signatureValid)).toBe(true);
    // The first run's events first, in the order they happened, then the second run's.
    expect(accepted[0]?.body).toStrictEqual({
      id: [...retried][0],
      type: "code_issued",
      deviceId: config.deviceId,
      at: expect.any(String),
      userCode: display.userCode,
      verificationUri: display.verificationUri,
      expiresAt: display.expiresAt,
    });
    expect(accepted[1]?.body).toMatchObject({
      type: "authenticated",
      method: "device_code",
      verified: true,
      claims: { sub: "alice" },
    });
    // Then what the second run raised (a silent sign-in or a new code), after the restart.
    expect(Date.parse(String(accepted[2]?.body["at"]))).toBeGreaterThanOrEqual(restartedAt);
    const times = accepted.map((d) => Date.parse(String(d.body["at"])));
    expect([...times].sort((a, b) => a - b)).toStrictEqual(times);
    expect(accepted[0]?.headers).toMatchObject({
      "content-type": "application/json",
      "webhook-id": [...retried][0],
      "webhook-timestamp": expect.stringMatching(/^\d+$/),
    });
    // No unsigned header says what an event is: its type is the signed body's.
    expect(
      Object.keys(accepted[0]?.headers ?? {}).filter((h) => h.startsWith("x-edge-signin")),
    ).toStrictEqual([]);
    // One event, one id: the webhook and MQTT carry the same id and time for it.
    const overMqtt = [
      (await probe.next(topics.event("code_issued"))).json<{ id: string; at: string }>(),
      mqttAuthenticated,
    ];
    expect(accepted.slice(0, 2).map((d) => [d.body["id"], d.body["at"]])).toStrictEqual(
      overMqtt.map((e) => [e.id, e.at]),
    );
    // Nothing left behind once delivered.
    await expect
      .poll(async () =>
        (await readdir(join(config.stateDir, "webhook-queue"))).filter((n) => n.endsWith(".json")),
      )
      .toStrictEqual([]);
  });

  it("drops an event the receiver refuses with a 4xx, without retrying it, and goes on", async () => {
    receiver = newReceiver();
    receiver.answer = (n) => (n === 0 ? 400 : 200);
    await receiver.listen();
    const log = captureLogger();
    // An unreachable provider makes the agent raise sign_in_failed events one after the other.
    const config = bed.config(webhookEnv({ EDGE_SIGNIN_AUTHORITY: "https://127.0.0.1:9/" }));
    await newAgent(config, log.logger).start();

    await receiver.until((d) => d.length >= 3);
    const [refused, ...rest] = receiver.deliveries;
    expect(refused?.status).toBe(400);
    expect(refused?.body).toMatchObject({ type: "sign_in_failed", reason: "network" });
    expect(rest.map((d) => d.body["id"])).not.toContain(refused?.body["id"]);
    expect(rest.every((d) => d.status === 200 && d.signatureValid)).toBe(true);
    expect(log.lines()).toContainEqual(
      expect.objectContaining({ msg: "webhook receiver refused the event; dropping it", status: 400 }),
    );
  });

  it("gives up on a receiver that does not answer within the timeout, and delivers the event on a retry", async () => {
    receiver = newReceiver();
    receiver.hang = (n) => n === 0;
    await receiver.listen();
    const log = captureLogger();
    const config = bed.config(webhookEnv({ EDGE_SIGNIN_WEBHOOK_TIMEOUT_SECONDS: "1" }));
    await newAgent(config, log.logger).start();

    await receiver.until(() => receiver.accepted().length >= 1);
    const [hung, ...rest] = receiver.deliveries;
    expect(hung?.status).toBe(0);
    expect(receiver.accepted()[0]?.body["id"]).toBe(hung?.body["id"]);
    expect(rest[0]?.body["id"]).toBe(hung?.body["id"]);
    expect(log.lines()).toContainEqual(
      expect.objectContaining({ msg: "webhook receiver unreachable; will retry", err: "timed out" }),
    );
  });
});
