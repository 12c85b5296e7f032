/**
 * Issue 16, findings 3, 6 and 9 (broker side): what the shipped agent publishes, whoever asks and whatever
 * STATE_DIR holds. Each test watches every topic on the broker (`#`), so a message that goes where it must not
 * is seen, not only the ones expected.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { seal } from "../../src/crypto/seal.js";
import { approveSignIn } from "../../src/dev/person.js";
import type { CommandResponse } from "../../src/requests/commands.js";
import { deviceTopics, type DisplayPayload, type StatePayload } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

describe("the shipped agent publishes only where it should", () => {
  const { bed, afterThisTest } = useTestBed({ probe: false });

  /** A probe on every topic, and the agent (the shipped bundle) with `env`, both gone after the test. */
  async function start(env: Record<string, string>) {
    const deviceId = env["EDGE_SIGNIN_DEVICE_ID"] ?? "";
    const topics = deviceTopics(env["EDGE_SIGNIN_TOPIC_PREFIX"] ?? "edge-signin", deviceId);
    const probe = await connectProbe(bed.broker.url);
    afterThisTest(() => probe.close());
    await probe.subscribe("#");
    const agent = startCli(["agent"], env);
    afterThisTest(async () => {
      agent.child.kill("SIGKILL");
      await agent.exited;
    });
    return { topics, probe, agent };
  }

  /** Every message the probe saw whose topic is not under `roots`. */
  function outside(probe: MqttProbe, seen: string[], roots: string[]): string[] {
    return seen
      .filter((topic) => !roots.some((root) => topic === root || topic.startsWith(`${root}/`)))
      .filter((topic) => probe.all(topic).length > 0);
  }

  it("answers MQTT 5 requests only under {base}/response/ or RESPONSE_TOPIC_PREFIX (finding 3)", async () => {
    const env = bed.env({ EDGE_SIGNIN_RESPONSE_TOPIC_PREFIX: "clients/controller" });
    const { topics, probe } = await start(env);
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user", 30_000);
    const other = deviceTopics("edge-signin", "another-device");
    const forbidden = [
      topics.event("authenticated"),
      topics.display,
      topics.state,
      topics.availability,
      topics.request("sign-out"),
      other.event("authenticated"),
      other.response("status"),
      "homeassistant/lock/front_door/set",
      "homeassistant/sensor/x/config",
      "clients/controllerX/reply",
      "edge-signin",
    ];
    for (const responseTopic of forbidden) {
      const correlationData = Buffer.from(randomUUID());
      await probe.publish(topics.request("status"), "{}", { properties: { responseTopic, correlationData } });
      // Answered all the same, on the default topic (without the correlation data it was not asked for).
      const answer = await probe.next(topics.response("status"));
      expect(answer.json<CommandResponse>()).toMatchObject({ status: "ok" });
    }
    for (const allowed of [
      `${topics.base}/response/status/${randomUUID()}`,
      `clients/controller/${randomUUID()}`,
    ]) {
      const correlationData = Buffer.from(randomUUID());
      await probe.publish(topics.request("status"), "{}", {
        properties: { responseTopic: allowed, correlationData },
      });
      const answer = await probe.next(allowed);
      expect(answer.properties?.correlationData).toStrictEqual(correlationData);
    }
    // Nothing that looks like an answer reached any forbidden topic.
    const answers = forbidden.filter((topic) =>
      probe.all(topic).some((m) => m.payload.toString().includes('"status":"ok"')),
    );
    expect(answers).toStrictEqual([]);
  });

  it("publishes only its own, sealed, well-formed outbox entries; bad ones are set aside, the rest flow (finding 6)", async () => {
    const key = randomBytes(32);
    const env = bed.env({ EDGE_SIGNIN_CACHE_KEY: key.toString("base64") });
    const deviceId = env["EDGE_SIGNIN_DEVICE_ID"] ?? "";
    const topics = deviceTopics("edge-signin", deviceId);
    const other = deviceTopics("edge-signin", "another-device");
    const outbox = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", "outbox");
    await mkdir(outbox, { recursive: true, mode: 0o700 });
    const entry = (topic: string, id: string) =>
      JSON.stringify({
        v: 1,
        topic,
        payload: { id, type: "signed_out", deviceId, at: new Date().toISOString() },
      });
    const shortTag = JSON.parse(seal(entry(topics.event("signed_out"), "short-tag"), key)) as { tag: string };
    shortTag.tag = Buffer.from(shortTag.tag, "base64").subarray(0, 4).toString("base64");
    const planted: Array<[string, string]> = [
      ["0000000000000001.json", seal(entry(topics.event("signed_out"), "planted-good"), key)],
      ["0000000000000002.json", seal(entry(other.event("authenticated"), "other-device"), key)],
      ["0000000000000003.json", seal(entry("homeassistant/lock/front_door/set", "lock"), key)],
      ["0000000000000004.json", entry(topics.event("signed_out"), "not-sealed")],
      ["0000000000000005.json", seal(entry(`${topics.base}/events/#`, "wildcard"), key)],
      ["0000000000000006.json", seal(entry(`${topics.base}/events/a\u0000b`, "nul"), key)],
      [
        "0000000000000007.json",
        JSON.stringify({ ...JSON.parse(seal(entry(topics.event("signed_out"), "x"), key)), ...shortTag }),
      ],
      ["0000000000000008.json", seal(entry(topics.display, "display"), key)],
      ["0000000000000009.json", seal(entry(topics.event("signed_out"), `big-${"x".repeat(300_000)}`), key)],
    ];
    for (const [name, text] of planted) await writeFile(join(outbox, name), text, { mode: 0o600 });
    await symlink("/etc/hostname", join(outbox, "0000000000000010.json"));

    const { probe } = await start(env);
    // The agent's own first event comes after every planted one (the outbox keeps order): by then each had its turn.
    await probe.next(topics.event("code_issued"), undefined, 30_000);
    expect(probe.all(topics.event("signed_out")).map((m) => m.json<{ id: string }>().id)).toStrictEqual([
      "planted-good",
    ]);
    expect(
      outside(probe, [other.event("authenticated"), "homeassistant/lock/front_door/set"], []),
    ).toStrictEqual([]);
    expect(probe.all(topics.display).filter((m) => m.payload.toString().includes('"display"'))).toStrictEqual(
      [],
    );
    expect((await readdir(outbox)).filter((name) => name.endsWith(".corrupt")).sort()).toStrictEqual(
      ["02", "03", "04", "05", "06", "07", "08", "09", "10"].map((n) => `00000000000000${n}.json.corrupt`),
    );
  });

  it("starts, and clears only its own discovery configs, whatever home-assistant-discovery.json lists (finding 9)", async () => {
    const env = bed.env();
    const stateDir = env["EDGE_SIGNIN_STATE_DIR"] ?? "";
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const foreign = "homeassistant/lock/front_door/config";
    const seed = await connectProbe(bed.broker.url);
    await seed.publish(foreign, '{"name":"Front door"}', { retain: true, qos: 1 });
    await seed.close();
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(
      join(stateDir, "home-assistant-discovery.json"),
      JSON.stringify(["homeassistant/#", foreign, "homeassistant/+/x/config", "a\u0000b", 42]),
      { mode: 0o600 },
    );
    const { probe, agent } = await start(env);
    await probe.next(topics.state, (m) => m.json<StatePayload>().state === "awaiting_user", 30_000);
    expect(agent.child.exitCode).toBe(null);
    // A fresh subscriber still gets the foreign config: nobody removed it.
    const check = await connectProbe(bed.broker.url);
    afterThisTest(() => check.close());
    await check.subscribe(foreign);
    expect((await check.next(foreign)).payload.toString()).toBe('{"name":"Front door"}');
    await seedCleanup(bed.broker.url, foreign);
  });

  it("never sends a device code or token to an http:// endpoint named in the cached metadata (finding 7)", async () => {
    const env = bed.env();
    const metadata = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", "authority-metadata.json");
    const first = await start(env);
    const firstCode = (
      await first.probe.next(first.topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>().userCode;
    await stopped(first.agent);
    // Fresh, from the right discovery URL, and every endpoint moved to cleartext on another host.
    const cached = JSON.parse(await readFile(metadata, "utf8")) as { document: Record<string, unknown> };
    for (const [name, value] of Object.entries(cached.document))
      if (name.endsWith("_endpoint") || name === "jwks_uri")
        cached.document[name] = String(value).replace(/^https:\/\/[^/]+/, "http://idp.example.test");
    await writeFile(metadata, JSON.stringify({ ...cached, fetchedAt: Date.now() }), { mode: 0o600 });

    const second = await start(env);
    const display = await second.probe.next(
      second.topics.display,
      (m) => m.payload.length > 0 && m.json<DisplayPayload>().userCode !== firstCode,
      30_000,
    );
    expect(new URL(display.json<DisplayPayload>().verificationUri).protocol).toBe("https:");
    expect(second.agent.stdout()).not.toContain("idp.example.test");
  });

  it("keeps the signed-in person out of the retained state and out of the log (finding 9)", async () => {
    const env = bed.env({ EDGE_SIGNIN_LOG_LEVEL: "info" });
    const { topics, probe, agent } = await start(env);
    const display = (
      await probe.next(topics.display, (m) => m.payload.length > 0, 30_000)
    ).json<DisplayPayload>();
    await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "carol" });
    const signedIn = await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");
    expect(Object.keys(signedIn.json<StatePayload>()).sort()).toStrictEqual(["deviceId", "since", "state"]);
    await probe.next(topics.event("authenticated"));
    await stopped(agent);
    expect(agent.stdout()).toContain('"msg":"signed in"');
    expect(
      agent
        .stdout()
        .split("\n")
        .filter((l) => /carol/i.test(l)),
    ).toStrictEqual([]);
  });
});

async function stopped(agent: RunningCli): Promise<void> {
  agent.child.kill("SIGTERM");
  await agent.exited;
}

async function seedCleanup(url: string, topic: string): Promise<void> {
  const client = await connectProbe(url);
  await client.publish(topic, "", { retain: true, qos: 1 });
  await client.close();
}
