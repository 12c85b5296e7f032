import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { deviceTopics, type DisplayPayload, type EventPayload } from "../../src/mqtt/topics.js";
import { startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { REPO } from "./compose-broker.js";
import {
  buildImage,
  docker,
  HARDENED_RUN_FLAGS,
  imageSize,
  requireEngine,
  Teardown,
  uniqueName,
} from "./engine.js";

/**
 * The image built from docker/Dockerfile, run the way a device maker runs it: as the image's own (non-root)
 * user, read-only root file system, every capability dropped, no new privileges, an init process, STATE_DIR on
 * a named volume. Host networking, so the agent reaches this file's broker and identity provider on
 * 127.0.0.1 (as it would reach a broker on its own device); nothing addresses a container by its bridge IP.
 */
const CA_IN_CONTAINER = "/run/edge-signin/idp-ca.pem";
const STATE_DIR = "/var/lib/edge-signin";
/** The agent's heartbeat here (the image's HEALTHCHECK decides from it): stale after 3, so 3 s. */
const HEARTBEAT_SECONDS = 1;
const MiB = 2 ** 20;

const teardown = new Teardown();
let image: string;
let bed: TestBed;
let probe: MqttProbe;

beforeAll(async () => {
  await requireEngine();
  image = uniqueName("image");
  // Registered before the build: a build that fails half-way may still have tagged nothing, and `rmi -f`
  // of a missing tag is the one failure teardown tolerates.
  teardown.add(() => docker(["rmi", "-f", image]).catch(() => undefined));
  await buildImage(image);
  bed = await startTestBed({ pollIntervalSeconds: 1 });
  teardown.add(() => bed.close());
  probe = await connectProbe(bed.broker.url);
  teardown.add(() => probe.close());
  await probe.subscribe("edge-signin/#");
}, 16 * 60_000);

afterAll(() => teardown.run(), 120_000);

interface Device {
  readonly id: string;
  readonly volume: string;
  readonly topics: ReturnType<typeof deviceTopics>;
}

/** A device: its id and its STATE_DIR volume (removed after the file, with the containers that used it). */
async function newDevice(): Promise<Device> {
  const id = uniqueName("tv");
  const volume = uniqueName("state");
  await docker(["volume", "create", volume]);
  teardown.add(() => docker(["volume", "rm", "-f", volume]));
  return { id, volume, topics: deviceTopics("edge-signin", id) };
}

/** `docker run` of the agent on `device`, locked down as compose.yaml runs it; returns the container's name. */
async function runAgent(device: Device): Promise<string> {
  const name = uniqueName("agent");
  teardown.add(() => docker(["rm", "-f", "-v", name]));
  const env = bed.env({
    EDGE_SIGNIN_DEVICE_ID: device.id,
    EDGE_SIGNIN_IDP_CA_FILE: CA_IN_CONTAINER,
    EDGE_SIGNIN_HEALTH_INTERVAL_SECONDS: String(HEARTBEAT_SECONDS),
  });
  // The image's own STATE_DIR (its ENV): the volume is mounted there.
  delete env["EDGE_SIGNIN_STATE_DIR"];
  await docker([
    "run",
    "--detach",
    "--name",
    name,
    ...HARDENED_RUN_FLAGS,
    "--volume",
    `${device.volume}:${STATE_DIR}`,
    "--volume",
    `${bed.idp.caFile}:${CA_IN_CONTAINER}:ro`,
    // The shipped HEALTHCHECK command, checked more often than its 30 s so the test need not wait for it.
    "--health-interval",
    "1s",
    "--health-start-period",
    "2s",
    ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
    image,
  ]);
  return name;
}

/** What a failing wait shows: the container's state and the tail of its log. */
async function describeContainer(name: string): Promise<string> {
  const state = await docker(["inspect", "--format", "{{json .State}}", name]).catch((e: Error) => e.message);
  const logs = await docker(["logs", "--tail", "40", name]).catch((e: Error) => ({
    stdout: e.message,
    stderr: "",
  }));
  return `container ${name}: ${typeof state === "string" ? state : state.stdout}\n${logs.stdout}${logs.stderr}`;
}

/** The message `probe.next` waits for, or a failure that says what the container was doing. */
async function expectMessage(name: string, ...args: Parameters<MqttProbe["next"]>) {
  try {
    return await probe.next(...args);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await describeContainer(name)}`, { cause: error });
  }
}

interface Health {
  readonly Status: string;
  readonly Log: ReadonlyArray<{ readonly ExitCode: number; readonly Output: string }>;
}

/** Polls the engine's view of the container's health until it is `status` (at most `timeoutMs`). */
async function healthBecomes(name: string, status: "healthy" | "unhealthy", timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = JSON.parse(
      (await docker(["inspect", "--format", "{{json .State.Health}}", name])).stdout,
    ) as Health;
    if (health.Status === status) return health;
    if (Date.now() > deadline) {
      throw new Error(`health is ${health.Status}, not ${status}: ${JSON.stringify(health.Log.at(-1))}`);
    }
    await sleep(250);
  }
}

/** `docker stop` with a 5 s grace: a container that is still running then is killed, and exits 137, not 0. */
async function stopWithinFiveSeconds(name: string): Promise<{ ExitCode: number; OOMKilled: boolean }> {
  await docker(["stop", "--time", "5", name]);
  const state = JSON.parse((await docker(["inspect", "--format", "{{json .State}}", name])).stdout) as {
    ExitCode: number;
    OOMKilled: boolean;
  };
  return { ExitCode: state.ExitCode, OOMKilled: state.OOMKilled };
}

describe("the image built from docker/Dockerfile", () => {
  it("signs a person in end to end, and a restart with the same volume signs them in silently", async () => {
    const device = await newDevice();
    const first = await runAgent(device);
    const prompt = (
      await expectMessage(first, device.topics.display, (m) => m.payload.length > 0)
    ).json<DisplayPayload>();
    // The image's user, not root, under the lock-down: the root file system refuses a write.
    expect((await docker(["exec", first, "node", "-p", "process.getuid()"])).stdout.trim()).toBe("1000");
    await expect(docker(["exec", first, "touch", "/app/written"])).rejects.toThrow(/Read-only file system/);

    await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "ann" });
    const event = (await expectMessage(first, device.topics.event("authenticated"))).json<
      EventPayload<"authenticated">
    >();
    expect(event.method).toBe("device_code");
    expect(event.claims).toMatchObject({ sub: "ann", name: "Ann", iss: bed.idp.issuer });
    expect(await stopWithinFiveSeconds(first)).toStrictEqual({ ExitCode: 0, OOMKilled: false });

    const promptsBefore = probe.all(device.topics.display).length;
    const second = await runAgent(device);
    const silent = (await expectMessage(second, device.topics.event("authenticated"))).json<
      EventPayload<"authenticated">
    >();
    expect(silent.method).toBe("refresh");
    expect(silent.claims).toMatchObject({ sub: "ann", name: "Ann" });
    // No code was shown for it: the session came from the volume.
    const shownSince = probe.all(device.topics.display).slice(promptsBefore);
    expect(shownSince.filter((m) => m.payload.length > 0)).toStrictEqual([]);
    expect(await stopWithinFiveSeconds(second)).toStrictEqual({ ExitCode: 0, OOMKilled: false });
  });

  it("reports healthy through its HEALTHCHECK, unhealthy while the broker is gone, healthy once it is back", async () => {
    const device = await newDevice();
    const name = await runAgent(device);
    await expectMessage(name, device.topics.display, (m) => m.payload.length > 0);
    // The shipped command, untouched by `docker run`.
    const check = JSON.parse(
      (await docker(["inspect", "--format", "{{json .Config.Healthcheck.Test}}", name])).stdout,
    ) as string[];
    expect(check).toStrictEqual(["CMD", "node", "dist/bundle/edge-signin.mjs", "health"]);

    const healthy = await healthBecomes(name, "healthy");
    expect(healthy.Log.at(-1)?.Output).toMatch(/^healthy: state awaiting_user since \S+, broker connected/);
    await bed.broker.stop();
    try {
      const unhealthy = await healthBecomes(name, "unhealthy");
      expect(unhealthy.Log.at(-1)).toMatchObject({ ExitCode: 1 });
      expect(unhealthy.Log.at(-1)?.Output).toMatch(/^unhealthy: the broker has been unreachable for \d+ s/);
    } finally {
      await bed.broker.start();
    }
    expect((await healthBecomes(name, "healthy")).Log.at(-1)?.Output).toMatch(/broker connected/);
  });

  it("on `docker stop` clears the code from the display, announces offline and exits 0 within 5 s", async () => {
    const device = await newDevice();
    const name = await runAgent(device);
    await expectMessage(name, device.topics.display, (m) => m.payload.length > 0);
    await expectMessage(name, device.topics.availability, (m) => m.payload.toString() === "online");

    expect(await stopWithinFiveSeconds(name)).toStrictEqual({ ExitCode: 0, OOMKilled: false });
    await expectMessage(name, device.topics.display, (m) => m.payload.length === 0);
    const offline = await expectMessage(name, device.topics.availability);
    expect(offline.payload.toString()).toBe("offline");
  });

  it("is at most 5 MiB larger than its base image", async () => {
    const dockerfile = await readFile(join(REPO, "docker/Dockerfile"), "utf8");
    const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    expect(base).toBeDefined();
    const overBase = (await imageSize(image)) - (await imageSize(base ?? ""));
    expect(overBase).toBeGreaterThan(0);
    expect(overBase / MiB).toBeLessThanOrEqual(5);
  });
});
