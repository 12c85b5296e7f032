import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuthErrorCode } from "aedes";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { runCli, startCli, type RunningCli } from "../helpers/cli.js";
import { startAedes, startNats, type InteropBroker } from "../helpers/interop-brokers.js";
import { connectProbe } from "../helpers/mqtt-probe.js";
import { agentEnv, logLines, startJourneyBed, waitForLog, type JourneyBed } from "./journey.js";

/** What the broker says to the agent's next CONNECTs; undefined: accept. */
let refusals: Array<AuthErrorCode | undefined> = [];
let connects = 0;
/** How many of the agent's next SUBSCRIBEs to its request topic are refused (SUBACK 0x80). */
let subscribeRefusals = 0;
let requestSubscribes = 0;

describe("a broker that refuses the agent", () => {
  let bed: JourneyBed;
  let aedes: Awaited<ReturnType<typeof startAedes>>;
  let nats: InteropBroker;
  const running: RunningCli[] = [];
  beforeAll(async () => {
    [bed, aedes, nats] = await Promise.all([
      startJourneyBed(),
      startAedes({
        refuse: (clientId) => {
          if (!clientId.startsWith("edge-signin-dev-")) return undefined;
          connects += 1;
          return refusals.shift();
        },
        refuseSubscribe: (clientId, filter) => {
          if (!clientId.startsWith("edge-signin-dev-") || !filter.endsWith("/request/+")) return false;
          requestSubscribes += 1;
          if (subscribeRefusals === 0) return false;
          subscribeRefusals -= 1;
          return true;
        },
      }),
      startNats(),
    ]);
  });
  afterAll(async () => {
    for (const cli of running) cli.child.kill("SIGKILL");
    await Promise.all([bed.close(), aedes.close(), nats.close()]);
  });

  it("tries again after a refusal that passes (CONNACK 3, server unavailable) and then shows a code", async () => {
    refusals = [3, 3];
    connects = 0;
    const env = await agentEnv(bed, aedes.url, { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4" });
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const probe = await connectProbe(aedes.url, { protocolVersion: 4 });
    try {
      await probe.subscribe(topics.display);
      const agent = startCli(["agent"], env);
      running.push(agent);
      const shown = await probe.next(topics.display, (m) => m.payload.length > 0, 30_000);
      expect(shown.json()).toMatchObject({ deviceId: env["EDGE_SIGNIN_DEVICE_ID"] });
      expect(connects).toBe(3);
      const refused = logLines(agent).filter(
        (l) => l["msg"] === "broker refused the connection for now; retrying with backoff",
      );
      expect(refused.map((l) => (l["err"] as { code: number }).code)).toStrictEqual([3, 3]);
      agent.child.kill("SIGTERM");
      expect(await agent.exited).toBe(0);
    } finally {
      await probe.close();
    }
  });

  it("tries a refused subscription again (a cluster electing a leader) and then answers commands", async () => {
    refusals = [];
    subscribeRefusals = 2;
    requestSubscribes = 0;
    const env = await agentEnv(bed, aedes.url);
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const probe = await connectProbe(aedes.url, { protocolVersion: 4 });
    try {
      await probe.subscribe(topics.display);
      await probe.subscribe(`${topics.base}/response/#`);
      const agent = startCli(["agent"], env);
      running.push(agent);
      await probe.next(topics.display, (m) => m.payload.length > 0, 30_000);
      // Asked until answered (MQTT 3.1.1: on the default response topic), within the backoff's 1 s + 2 s, bounded.
      const deadline = Date.now() + 20_000;
      let answered = false;
      while (!answered && Date.now() < deadline) {
        await probe.publish(topics.request("status"), "{}", { qos: 1 });
        answered = await probe
          .next(`${topics.base}/response/status`, undefined, 1_000)
          .then(() => true)
          .catch(() => false);
      }
      expect(answered).toBe(true);
      expect(requestSubscribes).toBe(3);
      const warned = logLines(agent).filter((l) =>
        String(l["msg"]).startsWith("the broker refused a subscription"),
      );
      expect(warned.map((l) => l["reasonCode"])).toStrictEqual([0x80, 0x80]);
      agent.child.kill("SIGTERM");
      expect(await agent.exited).toBe(0);
    } finally {
      await probe.close();
    }
  });

  it("stops at once on bad credentials: one line naming the setting, exit code 4, the state directory let go", async () => {
    refusals = [4];
    const env = await agentEnv(bed, aedes.url);
    const result = await runCli(["agent"], env, 30_000);
    expect(result.code).toBe(4);
    expect(result.stderr).toBe(
      "edge-signin: the broker refused the connection: bad user name or password (CONNACK 4); check EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the client certificate, EDGE_SIGNIN_MQTT_CERT_FILE)\n",
    );
    expect(existsSync(join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", "agent.lock"))).toBe(false);
  });

  it("stops on not authorised after it was connected (credentials revoked on a reconnect), never lingering", async () => {
    refusals = [];
    const env = await agentEnv(bed, aedes.url);
    const agent = startCli(["agent"], env);
    running.push(agent);
    await waitForLog(agent, (l) => String(l["msg"]).startsWith("connected to broker"));
    // The broker drops every connection and refuses the next: as after a password change.
    refusals = [5];
    // aedes keeps its connected clients by id (not in its type declarations).
    const { clients } = aedes.aedes as unknown as { clients: Record<string, { close(): void } | undefined> };
    const client = clients[`edge-signin-${env["EDGE_SIGNIN_DEVICE_ID"]}`];
    expect(client).toBeDefined();
    client?.close();
    expect(await agent.exited).toBe(4);
    expect(agent.stderr()).toBe(
      "edge-signin: the broker refused the connection: not authorised (CONNACK 5); check EDGE_SIGNIN_MQTT_USERNAME / EDGE_SIGNIN_MQTT_PASSWORD (or the credentials in EDGE_SIGNIN_MQTT_URL) and the broker's ACL for that user\n",
    );
  });

  it("names EDGE_SIGNIN_MQTT_PROTOCOL_VERSION when MQTT 5 is forced on a broker that speaks only 3.1.1 (NATS)", async () => {
    const result = await runCli(
      ["agent"],
      await agentEnv(bed, nats.url, { EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "5" }),
    );
    expect(result.code).toBe(4);
    expect(result.stderr).toBe(
      "edge-signin: the broker does not speak MQTT 5 (CONNACK 1); set EDGE_SIGNIN_MQTT_PROTOCOL_VERSION to auto\n",
    );
  });

  it("refuses a device id with a '.' at start, naming EDGE_SIGNIN_DEVICE_ID", async () => {
    const result = await runCli(
      ["agent"],
      await agentEnv(bed, nats.url, { EDGE_SIGNIN_DEVICE_ID: "living.room" }),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "edge-signin: EDGE_SIGNIN_DEVICE_ID: expected letters, digits, '_' or '-' (no '.': NATS refuses it in topics and RabbitMQ turns it into '/')\n",
    );
  });

  it("a terminal display on a 3.1.1-only broker falls back to 3.1.1 and shows the code", async () => {
    refusals = [];
    const env = await agentEnv(bed, nats.url);
    const agent = startCli(["agent"], env);
    running.push(agent);
    await waitForLog(agent, (l) => l["msg"] === "code issued");
    const display = startCli(["display", "--device", env["EDGE_SIGNIN_DEVICE_ID"] ?? ""], {
      EDGE_SIGNIN_MQTT_URL: nats.url,
    });
    running.push(display);
    const deadline = Date.now() + 30_000;
    while (!display.stdout().includes("and enter the code") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(display.stdout()).toContain("and enter the code");
    expect(display.stdout()).toContain("[display] connected to the broker (MQTT 3.1.1)\n");
    display.child.kill("SIGTERM");
    expect(await display.exited).toBe(0);
  });
});
