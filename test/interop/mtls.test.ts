import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import { approveSignIn } from "../../src/dev/person.js";
import { deviceTopics, type DisplayPayload } from "../../src/mqtt/topics.js";
import { runCli, startCli } from "../helpers/cli.js";
import { freeLoopbackPort } from "../helpers/interop-brokers.js";
import { agentEnv, startJourneyBed, waitForLog, type JourneyBed } from "./journey.js";

const DEVICE = `mtls-${process.pid}`;

/** openssl, as a person preparing a device would run it. */
function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/** A CA, the broker's certificate (for 127.0.0.1) and client certificates named by their CN. */
function makeCertificates(dir: string): void {
  const ca = (name: string) => {
    openssl(
      dir,
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    );
  };
  const issue = (name: string, cn: string, issuer: string) => {
    openssl(
      dir,
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    );
    openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${issuer}.pem`,
      "-CAkey",
      `${issuer}.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-out",
      `${name}.pem`,
      "-extfile",
      `${name}.ext`,
    );
  };
  ca("ca");
  ca("rogue-ca");
  const write = (name: string, text: string) =>
    execFileSync("sh", ["-c", `cat > ${name}`], { cwd: dir, input: text });
  write("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  write("agent.ext", "extendedKeyUsage=clientAuth\n");
  write("probe.ext", "extendedKeyUsage=clientAuth\n");
  write("rogue.ext", "extendedKeyUsage=clientAuth\n");
  issue("server", "localhost", "ca");
  issue("agent", `${DEVICE}-agent`, "ca");
  issue("probe", "test-probe", "ca");
  issue("rogue", `${DEVICE}-agent`, "rogue-ca");
}

describe("client-certificate (mutual TLS) login to Mosquitto", () => {
  let bed: JourneyBed;
  let dir: string;
  let container: StartedTestContainer;
  let url: string;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    [bed, dir] = await Promise.all([startJourneyBed(), mkdtemp(join(tmpdir(), "edge-signin-mtls-"))]);
    makeCertificates(dir);
    const config = [
      "listener 8883",
      "cafile /mosquitto/config/ca.pem",
      "certfile /mosquitto/config/server.pem",
      "keyfile /mosquitto/config/server.key",
      "require_certificate true",
      // The certificate's CN is the user name: the ACL below is keyed on it.
      "use_identity_as_username true",
      "acl_file /mosquitto/config/acl",
      "persistence false",
      "log_dest stderr",
      "",
    ].join("\n");
    const acl = [
      `user ${DEVICE}-agent`,
      `topic readwrite edge-signin/${DEVICE}/#`,
      "user test-probe",
      "topic readwrite edge-signin/#",
      "",
    ].join("\n");
    const port = await freeLoopbackPort();
    const copy = async (name: string) => ({
      content: await readFile(file(name), "utf8"),
      target: `/mosquitto/config/${name}`,
      mode: 0o644,
    });
    container = await new GenericContainer("eclipse-mosquitto:2")
      .withExposedPorts({ container: 8883, host: port })
      .withCopyContentToContainer([
        { content: config, target: "/mosquitto/config/mosquitto.conf", mode: 0o644 },
        { content: acl, target: "/mosquitto/config/acl", mode: 0o644 },
        await copy("ca.pem"),
        await copy("server.pem"),
        await copy("server.key"),
      ])
      .withWaitStrategy(Wait.forLogMessage(/mosquitto version .* running/))
      .start();
    url = `mqtts://127.0.0.1:${port}`;
  }, 120_000);
  afterAll(async () => {
    await container?.stop({ timeout: 0, remove: true });
    await bed.close();
    await rm(dir, { recursive: true, force: true });
  });

  const tlsEnv = (cert: string) => ({
    EDGE_SIGNIN_DEVICE_ID: DEVICE,
    EDGE_SIGNIN_MQTT_CA_FILE: file("ca.pem"),
    EDGE_SIGNIN_MQTT_CERT_FILE: file(`${cert}.pem`),
    EDGE_SIGNIN_MQTT_KEY_FILE: file(`${cert}.key`),
  });

  it("signs a person in over mqtts with the device's certificate as its identity", async () => {
    const topics = deviceTopics("edge-signin", DEVICE);
    const probe = await mqtt.connectAsync(url, {
      ca: await readFile(file("ca.pem")),
      cert: await readFile(file("probe.pem")),
      key: await readFile(file("probe.key")),
      reconnectPeriod: 0,
    });
    const received: Array<{ topic: string; payload: string }> = [];
    probe.on("message", (topic, payload) => received.push({ topic, payload: payload.toString() }));
    await probe.subscribeAsync([topics.display, topics.event("authenticated")], { qos: 1 });
    const agent = startCli(["agent"], await agentEnv(bed, url, tlsEnv("agent")));
    try {
      const connected = await waitForLog(agent, (l) => String(l["msg"]).startsWith("connected to broker"));
      expect(connected["protocolVersion"]).toBe(5);
      const until = async <T>(find: () => T | undefined): Promise<T> => {
        for (let i = 0; i < 300; i++) {
          const found = find();
          if (found !== undefined) return found;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`not received; got ${JSON.stringify(received)}\n${agent.stdout()}`);
      };
      const display = JSON.parse(
        (await until(() => received.find((m) => m.topic === topics.display && m.payload.length > 0))).payload,
      ) as DisplayPayload;
      await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "erin" });
      const event = await until(() => received.find((m) => m.topic === topics.event("authenticated")));
      expect(JSON.parse(event.payload)).toMatchObject({
        type: "authenticated",
        deviceId: DEVICE,
        verified: true,
      });
    } finally {
      agent.child.kill("SIGTERM");
      await agent.exited;
      await probe.endAsync();
    }
  });

  it("stops with one clear line when the broker does not trust the client certificate", async () => {
    const result = await runCli(["agent"], await agentEnv(bed, url, tlsEnv("rogue")));
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      /^edge-signin: the broker does not accept the client certificate \(ERR_SSL_[A-Z0-9_]+\); check EDGE_SIGNIN_MQTT_CERT_FILE and EDGE_SIGNIN_MQTT_KEY_FILE\n$/,
    );
  });

  it("stops with one clear line when the agent does not trust the broker's certificate", async () => {
    const env = {
      ...(await agentEnv(bed, url, tlsEnv("agent"))),
      EDGE_SIGNIN_MQTT_CA_FILE: file("rogue-ca.pem"),
    };
    const result = await runCli(["agent"], env);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      /^edge-signin: the broker's certificate is not trusted \([A-Z_]+: .+\); check EDGE_SIGNIN_MQTT_CA_FILE and EDGE_SIGNIN_MQTT_URL\n$/,
    );
  });
});
