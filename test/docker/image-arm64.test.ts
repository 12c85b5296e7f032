import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import type { DisplayPayload, EventPayload } from "../../src/mqtt/topics.js";
import { startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { AgentContainers } from "./agent-container.js";
import { REPO } from "./compose-broker.js";
import {
  buildImage,
  command,
  docker,
  type ImagePlatform,
  imageSize,
  requireEmulation,
  requireEngine,
  Teardown,
  uniqueName,
} from "./engine.js";

/**
 * The same docker/Dockerfile built for linux/arm64 (Raspberry Pi 4 and 5, Jetson and the like) and run through one
 * sign-in, as image.test.ts runs the machine's own: on an amd64 machine under qemu (binfmt_misc), which must be
 * there; its absence fails the file, naming what to install. Emulation is several times slower than the real
 * board, so this is one journey and every wait is long: no figure here says how fast an arm64 device is.
 */
const ARM64: ImagePlatform = {
  platform: "linux/arm64",
  // On an arm64 machine its own base is the arm64 one; elsewhere the official per-architecture name, which
  // docker/stand-ins/build.sh makes where no registry is reachable.
  nodeImage: process.arch === "arm64" ? "node:22-bookworm-slim" : "arm64v8/node:22-bookworm-slim",
};
/** A message, a health status: minutes at most under emulation on a busy two-core machine. */
const WAIT_MS = 3 * 60_000;
const MiB = 2 ** 20;

const teardown = new Teardown();
let image: string;
let bed: TestBed;
let probe: MqttProbe;
let agents: AgentContainers;

beforeAll(async () => {
  await requireEngine();
  await requireEmulation("arm64");
  // Present, pulled, or made (debootstrap --arch=arm64, whose second stage runs under qemu): 2 min 20 s on a quiet
  // two-core machine, 6 to 7 min at load average 15.
  await command("bash", ["docker/stand-ins/build.sh", "--arch", "arm64", "node"], { timeoutMs: 12 * 60_000 });
  image = uniqueName("image-arm64");
  teardown.add(() => docker(["rmi", "-f", image]).catch(() => undefined));
  await buildImage(image, ARM64);
  bed = await startTestBed({ pollIntervalSeconds: 1 });
  teardown.add(() => bed.close());
  probe = await connectProbe(bed.broker.url);
  teardown.add(() => probe.close());
  await probe.subscribe("edge-signin/#");
  agents = new AgentContainers({
    image,
    bed,
    probe,
    teardown,
    platform: ARM64.platform,
    waitMs: WAIT_MS,
    // The agent ends itself within 4.5 s of SIGTERM (image.test.ts holds it to 5 s); emulated timers may run late.
    stopGraceSeconds: 30,
  });
}, 30 * 60_000);

afterAll(() => teardown.run(), 120_000);

describe("the image built from docker/Dockerfile for linux/arm64", () => {
  it("is an arm64 image over the arm64 base, as lean as the machine's own", async () => {
    expect(
      (await docker(["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image])).stdout.trim(),
    ).toBe("linux/arm64");
    const dockerfile = await readFile(join(REPO, "docker/Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:22-bookworm-slim$/m);
    const overBase = (await imageSize(image)) - (await imageSize(ARM64.nodeImage));
    expect(overBase).toBeGreaterThan(0);
    expect(overBase / MiB).toBeLessThanOrEqual(5);
  });

  it(
    "signs a person in under emulation: code, sign-in, authenticated, healthy, docker stop -> offline, exit 0",
    async () => {
      const device = await agents.newDevice();
      const name = await agents.runAgent(device);
      const prompt = (
        await agents.expectMessage(name, device.topics.display, (m) => m.payload.length > 0)
      ).json<DisplayPayload>();
      // arm64's Node, as the image's user; V8 took the code cache the build made, so that Node made it.
      expect((await docker(["exec", name, "node", "-p", "process.arch"])).stdout.trim()).toBe("arm64");
      expect((await docker(["exec", name, "node", "-p", "process.getuid()"])).stdout.trim()).toBe("1000");
      expect((await docker(["logs", name])).stdout).toMatch(/"module":"code-cache"[^\n]*"status":"used"/);
      await expect(docker(["exec", name, "touch", "/app/written"])).rejects.toThrow(/Read-only file system/);

      await approveSignIn(prompt.verificationUri, prompt.userCode, { ca: bed.idp.caPem, login: "ann" });
      const event = (await agents.expectMessage(name, device.topics.event("authenticated"))).json<
        EventPayload<"authenticated">
      >();
      expect(event.method).toBe("device_code");
      expect(event.claims).toMatchObject({ sub: "ann", name: "Ann", iss: bed.idp.issuer });
      // The image's own HEALTHCHECK, once a check has run since the sign-in.
      const authenticated = /^healthy: state signed_in since \S+, broker connected/;
      const healthy = await agents.healthBecomes(name, "healthy", authenticated);
      expect(healthy.Log.at(-1)?.Output).toMatch(authenticated);

      expect(await agents.stop(name)).toStrictEqual({ ExitCode: 0, OOMKilled: false });
      const offline = await agents.expectMessage(
        name,
        device.topics.availability,
        (m) => m.payload.toString() !== "online",
      );
      expect(offline.payload.toString()).toBe("offline");
    },
    15 * 60_000,
  );
});
