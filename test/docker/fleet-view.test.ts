import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetSnapshot } from "../../src/fleet/fleet.js";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { runCli, startCli, type RunningCli } from "../helpers/cli.js";
import { startComposeBroker, type ComposeBroker } from "./compose-broker.js";

/**
 * `edge-signin fleet` (the shipped bundle) as the read-only `fleet` user of compose.yaml's broker as it ships:
 * every device's retained availability and state, and nothing else.
 */
describe("edge-signin fleet", () => {
  let broker: ComposeBroker;
  let env: Record<string, string>;
  const clients: MqttClient[] = [];
  const processes: RunningCli[] = [];
  const T1 = "2026-11-30T08:00:00.000Z";
  const T2 = "2026-11-30T09:15:30.000Z";

  const agent = async (device: string) => {
    const client = await mqtt.connectAsync(broker.url, {
      ...(await broker.credentials("agent", device)),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(client);
    const topics = deviceTopics("edge-signin", device);
    return {
      online: (availability = "online") =>
        client.publishAsync(topics.availability, availability, { qos: 1, retain: true }),
      state: (state: string, since: string) =>
        client.publishAsync(topics.state, JSON.stringify({ state, since, deviceId: device }), {
          qos: 1,
          retain: true,
        }),
      raw: (topic: string, payload: string) => client.publishAsync(topic, payload, { qos: 1, retain: true }),
      topics,
    };
  };
  const fleet = async (...args: string[]) => {
    const result = await runCli(["fleet", "--once", ...args], env);
    expect(result.code, result.stderr).toBe(0);
    return result;
  };

  beforeAll(async () => {
    broker = await startComposeBroker();
    await broker.addDevices("kiosk-1", "kiosk-2", "kiosk-3");
    env = {
      EDGE_SIGNIN_MQTT_URL: broker.url,
      ...Object.fromEntries(
        Object.entries(await broker.credentials("fleet")).map(([k, v]) => [
          `EDGE_SIGNIN_MQTT_${k.toUpperCase()}`,
          v,
        ]),
      ),
    };
  }, 120_000);
  afterAll(async () => {
    for (const cli of processes) cli.child.kill("SIGKILL");
    await Promise.all(processes.map((cli) => cli.exited));
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker?.close();
  });

  it("lists every device with its availability, state, since when and last sign-in, with counts (--once --json)", async () => {
    const one = await agent("kiosk-1");
    await one.online();
    await one.state("signed_in", T1);
    // The prompt is retained too, but the fleet user cannot read it.
    await one.raw(one.topics.display, '{"userCode":"ABCD-EFGH"}');
    const two = await agent("kiosk-2");
    await two.online("offline");
    await two.state("awaiting_user", T2);
    // A malformed state (an old or broken agent): logged on stderr, shown as unknown.
    const living = await agent(broker.deviceId);
    await living.online();
    await living.raw(living.topics.state, '{"state":"weird","since":"\\u001b[31m"}');

    // A valid state whose time is not one (terminal control characters): ignored too.
    const three = await agent("kiosk-3");
    await three.raw(
      three.topics.state,
      JSON.stringify({ state: "signed_in", since: "\u001b[2J", deviceId: "kiosk-3" }),
    );

    const { stdout, stderr } = await fleet("--json");
    expect(JSON.parse(stdout)).toStrictEqual({
      devices: [
        { deviceId: "kiosk-1", availability: "online", state: "signed_in", since: T1, lastSignIn: T1 },
        { deviceId: "kiosk-2", availability: "offline", state: "awaiting_user", since: T2, lastSignIn: null },
        { deviceId: broker.deviceId, availability: "online", state: null, since: null, lastSignIn: null },
      ],
      counts: {
        devices: 3,
        byState: { starting: 0, signed_out: 0, awaiting_user: 1, signed_in: 1, error: 0, unknown: 1 },
        online: 2,
        offline: 1,
      },
    } satisfies FleetSnapshot);
    const warnings = stderr
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { msg: string; topic?: string })
      .filter((line) => line.msg === "ignored a malformed message");
    expect(warnings.map((w) => w.topic).sort()).toStrictEqual(
      [living.topics.state, three.topics.state].sort(),
    );
  });

  it("prints a table for people", async () => {
    const { stdout } = await fleet();
    expect(stdout.split("\n")).toStrictEqual([
      "DEVICE          AVAILABILITY  STATE          SINCE                 LAST SIGN-IN",
      "kiosk-1         online        signed_in      2026-11-30T08:00:00Z  2026-11-30T08:00:00Z",
      "kiosk-2         offline       awaiting_user  2026-11-30T09:15:30Z  -",
      `${broker.deviceId.padEnd(14)}  online        -              -                     -`,
      "",
      "3 devices: 2 online, 1 offline; 1 awaiting_user, 1 signed_in, 1 unknown",
      "",
    ]);
  });

  it("serves the same view as a web page and as JSON (--web)", async () => {
    const page = startCli(["fleet", "--web"], { ...env, EDGE_SIGNIN_DISPLAY_PORT: "0" });
    processes.push(page);
    await expect.poll(() => page.stderr(), { timeout: 15_000 }).toContain('"msg":"fleet page listening"');
    const url = (
      JSON.parse(
        page
          .stderr()
          .split("\n")
          .find((l) => l.includes("fleet page listening")) ?? "{}",
      ) as { url: string }
    ).url;
    const expected = JSON.parse((await fleet("--json")).stdout) as FleetSnapshot;
    await expect
      .poll(async () => (await fetch(`${url}.json`)).json(), { timeout: 10_000 })
      .toStrictEqual(expected);

    const html = await (await fetch(url)).text();
    expect(html).toContain(
      '<tr><td>kiosk-1</td><td class="online">online</td><td>signed_in</td><td><time datetime="2026-11-30T08:00:00.000Z">2026-11-30T08:00:00Z</time></td>',
    );
    expect(html).toContain(
      '<p id="summary">3 devices: 2 online, 1 offline; 1 awaiting_user, 1 signed_in, 1 unknown</p>',
    );
    // DNS rebinding: another site's name pointed at this address gets nothing.
    const { request } = await import("node:http");
    const status = await new Promise<number | undefined>((resolve, reject) =>
      request(`${url}.json`, { headers: { host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .on("error", reject)
        .end(),
    );
    expect(status).toBe(403);
    page.child.kill("SIGTERM");
    expect(await page.exited).toBe(0);
  });

  it("shows a real agent as it comes up, and follows changes until SIGTERM", async () => {
    const follower = startCli(["fleet", "--json"], env);
    processes.push(follower);
    const views = () =>
      follower
        .stdout()
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as FleetSnapshot);
    const device = (id: string) =>
      views()
        .at(-1)
        ?.devices.find((d) => d.deviceId === id);
    await expect.poll(() => device("kiosk-1")?.state, { timeout: 15_000 }).toBe("signed_in");

    // The shipped agent, as kiosk-3's user; no provider is reachable, which does not matter here.
    const login = await broker.credentials("agent", "kiosk-3");
    const real = startCli(["agent"], {
      EDGE_SIGNIN_AUTHORITY: "https://127.0.0.1:9/",
      EDGE_SIGNIN_CLIENT_ID: "fleet-test",
      EDGE_SIGNIN_DEVICE_ID: "kiosk-3",
      EDGE_SIGNIN_MQTT_URL: broker.url,
      EDGE_SIGNIN_MQTT_USERNAME: login.username,
      EDGE_SIGNIN_MQTT_PASSWORD: login.password,
      EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(tmpdir(), "edge-signin-fleet-")),
      EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "5",
    });
    processes.push(real);
    await expect.poll(() => device("kiosk-3")?.availability, { timeout: 30_000 }).toBe("online");
    await expect.poll(() => device("kiosk-3")?.state, { timeout: 30_000 }).not.toBeNull();

    // kiosk-2's person signs in: the view follows, and keeps the time as the last sign-in after sign-out.
    const two = await agent("kiosk-2");
    await two.state("signed_in", "2026-11-30T10:00:00.000Z");
    await expect
      .poll(() => device("kiosk-2")?.lastSignIn, { timeout: 10_000 })
      .toBe("2026-11-30T10:00:00.000Z");
    await two.state("signed_out", "2026-11-30T11:00:00.000Z");
    await expect.poll(() => device("kiosk-2")?.state, { timeout: 10_000 }).toBe("signed_out");
    expect(device("kiosk-2")).toStrictEqual({
      deviceId: "kiosk-2",
      availability: "offline",
      state: "signed_out",
      since: "2026-11-30T11:00:00.000Z",
      lastSignIn: "2026-11-30T10:00:00.000Z",
    });

    follower.child.kill("SIGTERM");
    expect(await follower.exited).toBe(0);
  }, 90_000);

  it("exits with code 4 and one line naming the setting when the broker refuses the fleet user (--once)", async () => {
    const result = await runCli(["fleet", "--once"], { ...env, EDGE_SIGNIN_MQTT_PASSWORD: "wrong" });
    // README, exit codes: 4 = the broker refused us for good.
    expect(result.code).toBe(4);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines.filter((line) => line.startsWith("edge-signin: "))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/check EDGE_SIGNIN_MQTT_(USERNAME|PASSWORD)/);
  });
});
