/**
 * The core journey every broker in README's compatibility table must carry, with the shipped bundle and default
 * settings: a late display gets the code, a person signs in, the display is cleared, a command is answered, and
 * the broker publishes the last will when the agent is SIGKILLed.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { startDevIdentityProvider, type DevIdentityProvider } from "../../src/dev/identity-provider.js";
import { approveSignIn } from "../../src/dev/person.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

export interface JourneyBed {
  readonly idp: DevIdentityProvider;
  readonly dir: string;
  close(): Promise<void>;
}

export async function startJourneyBed(): Promise<JourneyBed> {
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-interop-"));
  const idp = await startDevIdentityProvider({ pollIntervalSeconds: 1, certDir: dir });
  return {
    idp,
    dir,
    async close() {
      await idp.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface JourneyOptions {
  readonly brokerUrl: string;
  /** The MQTT version the test's own clients speak (3.1.1 brokers need 4). */
  readonly probeVersion: 4 | 5;
  /** The version the agent must report having used: `auto` picks it. */
  readonly expectedVersion: 4 | 5;
  /** Device id the agent is given; undefined: the default (the hostname, made safe). */
  readonly deviceId: string | undefined;
  /** The id the agent's topics must carry. */
  readonly topicId: string;
  readonly env?: Record<string, string>;
}

let agents = 0;

/** An agent's environment on this bed: its own state directory and device id, the given broker. */
export async function agentEnv(
  bed: JourneyBed,
  brokerUrl: string,
  overrides: Record<string, string> = {},
): Promise<Record<string, string>> {
  return {
    EDGE_SIGNIN_AUTHORITY: bed.idp.authority,
    EDGE_SIGNIN_CLIENT_ID: bed.idp.clientId,
    EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "entra",
    EDGE_SIGNIN_IDP_CA_FILE: bed.idp.caFile,
    EDGE_SIGNIN_MQTT_URL: brokerUrl,
    EDGE_SIGNIN_DEVICE_ID: `dev-${process.pid}-${++agents}`,
    EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.dir, "state-")),
    EDGE_SIGNIN_LOG_LEVEL: "debug",
    ...overrides,
  };
}

/** JSON log lines of the agent so far. */
export function logLines(cli: RunningCli): Array<Record<string, unknown>> {
  return cli
    .stdout()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The first log line that passes `predicate`, waiting for it up to `timeoutMs` (stdout comes through a pipe). */
export async function waitForLog(
  cli: RunningCli,
  predicate: (line: Record<string, unknown>) => boolean,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(cli).find(predicate);
    if (line) return line;
    if (Date.now() > deadline)
      throw new Error(`no such log line within ${timeoutMs} ms\n${cli.stdout()}\n${cli.stderr()}`);
    await sleep(50);
  }
}

export async function runCoreJourney(bed: JourneyBed, options: JourneyOptions): Promise<void> {
  const topics = deviceTopics("edge-signin", options.topicId);
  const probes: MqttProbe[] = [];
  const probe = async (...filters: string[]) => {
    const p = await connectProbe(options.brokerUrl, { protocolVersion: options.probeVersion });
    probes.push(p);
    // Exact topics, not `base/#`: RabbitMQ hands retained messages only to subscribers of the exact topic.
    for (const filter of filters) await p.subscribe(filter);
    return p;
  };
  const watcher = await probe(topics.availability, topics.event("authenticated"), topics.response("status"));
  const env = await agentEnv(bed, options.brokerUrl, options.env);
  if (options.deviceId === undefined) delete env["EDGE_SIGNIN_DEVICE_ID"];
  else env["EDGE_SIGNIN_DEVICE_ID"] = options.deviceId;
  const agent = startCli(["agent"], env);
  try {
    await watcher.next(topics.availability, (m) => m.payload.toString() === "online", 30_000);
    const connected = await waitForLog(agent, (l) => String(l["msg"]).startsWith("connected to broker"));
    expect(connected["protocolVersion"], agent.stdout()).toBe(options.expectedVersion);

    // A display that starts after the code was published gets it (retained).
    const late = await probe(topics.display);
    const display = (
      await late.next(topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    expect(display).toMatchObject({ deviceId: options.topicId, userCode: expect.any(String) });
    expect(Date.parse(display.expiresAt)).toBeGreaterThan(Date.now());

    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "erin" });
    const authenticated = (await watcher.next(topics.event("authenticated"), () => true, 30_000)).json<
      EventPayload<"authenticated">
    >();
    expect(authenticated).toMatchObject({ type: "authenticated", deviceId: options.topicId, verified: true });
    expect(authenticated.claims["preferred_username"]).toBe("erin@example.com");
    await late.next(topics.display, (m) => m.payload.length === 0, 15_000);

    // A command is answered (3.1.1 has no response topic: the answer goes to {base}/response/status).
    await watcher.publish(topics.request("status"), JSON.stringify({ transaction: 7 }));
    const answer = (await watcher.next(topics.response("status"), () => true, 15_000)).json<{
      status: string;
      data: StatePayload;
      transaction: number;
    }>();
    expect(answer).toMatchObject({ status: "ok", transaction: 7, data: { state: "signed_in" } });

    // The broker publishes the last will when the agent dies without a word.
    agent.child.kill("SIGKILL");
    await agent.exited;
    await watcher.next(topics.availability, (m) => m.payload.toString() === "offline", 30_000);
  } finally {
    agent.child.kill("SIGKILL");
    for (const p of probes) await p.close();
  }
}
