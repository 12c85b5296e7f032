import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DisplayPayload, EventPayload } from "../../src/mqtt/topics.js";
import { startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { AgentContainers } from "./agent-container.js";
import { REPO } from "./compose-broker.js";
import { buildImage, docker, imageSize, requireEngine, Teardown, uniqueName } from "./engine.js";

/** The image built from docker/Dockerfile, run as a device maker runs it (test/docker/agent-container.ts). */
const MiB = 2 ** 20;

const teardown = new Teardown();
let image: string;
let bed: TestBed;
let probe: MqttProbe;
let agents: AgentContainers;

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
  agents = new AgentContainers({ image, bed, probe, teardown });
}, 16 * 60_000);

afterAll(() => teardown.run(), 120_000);

describe("the image built from docker/Dockerfile", () => {
  it("signs a person in end to end, and a restart with the same volume signs them in silently", async () => {
    const device = await agents.newDevice();
    const first = await agents.runAgent(device);
    const prompt = (
      await agents.expectMessage(first, device.topics.display, (m) => m.payload.length > 0)
    ).json<DisplayPayload>();
    // The image's user, not root, under the lock-down: the root file system refuses a write.
    expect((await docker(["exec", first, "node", "-p", "process.getuid()"])).stdout.trim()).toBe("1000");
    await expect(docker(["exec", first, "touch", "/app/written"])).rejects.toThrow(/Read-only file system/);

    await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "ann" });
    const event = (await agents.expectMessage(first, device.topics.event("authenticated"))).json<
      EventPayload<"authenticated">
    >();
    expect(event.method).toBe("device_code");
    expect(event.claims).toMatchObject({ sub: "ann", name: "Ann", iss: bed.idp.issuer });
    expect(await agents.stop(first)).toStrictEqual({ ExitCode: 0, OOMKilled: false });

    const promptsBefore = probe.all(device.topics.display).length;
    const second = await agents.runAgent(device);
    const silent = (await agents.expectMessage(second, device.topics.event("authenticated"))).json<
      EventPayload<"authenticated">
    >();
    expect(silent.method).toBe("refresh");
    expect(silent.claims).toMatchObject({ sub: "ann", name: "Ann" });
    // No code was shown for it: the session came from the volume.
    const shownSince = probe.all(device.topics.display).slice(promptsBefore);
    expect(shownSince.filter((m) => m.payload.length > 0)).toStrictEqual([]);
    expect(await agents.stop(second)).toStrictEqual({ ExitCode: 0, OOMKilled: false });
  });

  it("reports healthy through its HEALTHCHECK, unhealthy while the broker is gone, healthy once it is back", async () => {
    const device = await agents.newDevice();
    const name = await agents.runAgent(device);
    await agents.expectMessage(name, device.topics.display, (m) => m.payload.length > 0);
    // The shipped command, untouched by `docker run`.
    const check = JSON.parse(
      (await docker(["inspect", "--format", "{{json .Config.Healthcheck.Test}}", name])).stdout,
    ) as string[];
    expect(check).toStrictEqual(["CMD", "node", "dist/bundle/edge-signin.mjs", "health"]);

    const healthy = await agents.healthBecomes(name, "healthy");
    expect(healthy.Log.at(-1)?.Output).toMatch(/^healthy: state awaiting_user since \S+, broker connected/);
    await bed.broker.stop();
    try {
      const unhealthy = await agents.healthBecomes(name, "unhealthy");
      expect(unhealthy.Log.at(-1)).toMatchObject({ ExitCode: 1 });
      expect(unhealthy.Log.at(-1)?.Output).toMatch(/^unhealthy: the broker has been unreachable for \d+ s/);
    } finally {
      await bed.broker.start();
    }
    expect((await agents.healthBecomes(name, "healthy")).Log.at(-1)?.Output).toMatch(/broker connected/);
  });

  it("on `docker stop` clears the code from the display, announces offline and exits 0 within 5 s", async () => {
    const device = await agents.newDevice();
    const name = await agents.runAgent(device);
    await agents.expectMessage(name, device.topics.display, (m) => m.payload.length > 0);
    await agents.expectMessage(name, device.topics.availability, (m) => m.payload.toString() === "online");

    expect(await agents.stop(name)).toStrictEqual({ ExitCode: 0, OOMKilled: false });
    await agents.expectMessage(name, device.topics.display, (m) => m.payload.length === 0);
    const offline = await agents.expectMessage(name, device.topics.availability);
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
