import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import { deviceTopics, type DisplayPayload, type EventPayload } from "../../src/mqtt/topics.js";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { deviceUser, exampleDeviceId, freePort, REPO } from "./compose-broker.js";
import { command, docker, requireEngine, Teardown, uniqueName, type CommandResult } from "./engine.js";

/**
 * compose.yaml as shipped, brought up for real by whichever Compose is present (v2 `docker compose`, else v1.29
 * `docker-compose`), the way README tells a device maker to: .env from .env.example, broker users from
 * docker/create-broker-users.sh, `up -d`. The project directory is a temp directory holding what a checkout
 * holds next to compose.yaml (.env, docker/mosquitto/, docker/secrets/), so nothing in this checkout is
 * touched. A test-only override (compose.identity-provider.yaml) adds an OpenID provider on the compose network.
 * Everything is reached through ports published on 127.0.0.1.
 */
const OVERRIDE = join(REPO, "test/docker/compose.identity-provider.yaml");
/** The provider's origin as the containers (and so its URLs) name it. */
const IDP_ORIGIN = "identity-provider:8443";
/** A second device, given its users and ACL blocks as README says to add a device. */
const OTHER_DEVICE = "kitchen-tv";

interface Runner {
  readonly file: string;
  readonly args: readonly string[];
  readonly version: string;
}

/** Compose v2 if the docker CLI has it, else v1 (`docker-compose`); fails, naming both, if neither answers. */
async function composeRunner(): Promise<Runner> {
  const v2 = await command("docker", ["compose", "version", "--short"]).catch(() => undefined);
  if (v2) return { file: "docker", args: ["compose"], version: `docker compose ${v2.stdout.trim()}` };
  const v1 = await command("docker-compose", ["version", "--short"]).catch(() => undefined);
  if (v1) return { file: "docker-compose", args: [], version: `docker-compose ${v1.stdout.trim()}` };
  throw new Error(
    "Neither `docker compose` (v2) nor `docker-compose` (v1) answers: install one (Debian: apt-get install " +
      "docker-compose; .ci/run does this).",
  );
}

/** Found before the tests are collected, so that their names say which Compose ran them. */
const runner = await composeRunner();
const teardown = new Teardown();
let project: string;
let dir: string;
let deviceId: string;
let ports: { mqtt: number; display: number; idp: number };
let env: NodeJS.ProcessEnv;
let browser: Browser | undefined;

/** Runs compose on this file's project: compose.yaml as shipped, then the test override. */
function compose(args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  return command(
    runner.file,
    [...runner.args, "--project-directory", dir, "-f", join(REPO, "compose.yaml"), "-f", OVERRIDE, ...args],
    { env, timeoutMs, cwd: dir },
  );
}

async function stackLogs(): Promise<string> {
  const logs = await compose(["logs", "--no-color", "--tail", "30"]).catch((e: Error) => ({
    stdout: e.message,
    stderr: "",
  }));
  return logs.stdout + logs.stderr;
}

interface AppRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The `apps` profile's app, run once as README says (`--profile apps`): `edge-signin token --json` as uid 1000
 * in a container of its own, with the agent's run volume read-only and no network. Its exit code, not a throw.
 */
async function runApp(): Promise<AppRun> {
  try {
    // -T: no terminal, so that stdout is the app's output alone.
    const { stdout, stderr } = await compose(["--profile", "apps", "run", "--rm", "-T", "app"]);
    return { exitCode: 0, stdout, stderr };
  } catch (error) {
    const failed = (error as Error).cause as { code?: unknown; stdout?: string; stderr?: string } | undefined;
    if (typeof failed?.code !== "number") throw error;
    return { exitCode: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

/** The controller's command to the agent, answered on its response topic. */
async function commandAgent(name: string): Promise<unknown> {
  const topics = deviceTopics("edge-signin", deviceId);
  const controller = await probeAs(await login(join(dir, "docker/secrets"), "controller", "controller"));
  await controller.subscribe(topics.response(name));
  await controller.publish(topics.request(name), "{}");
  const answer = (await controller.next(topics.response(name))).json();
  await closeProbe(controller);
  return answer;
}

/** Broker credentials as the users script wrote them (`events` and `controller` are the host user's files). */
/** A broker user's login: a device's users keep their passwords under secrets/{device}/, the shared ones at the top. */
async function login(secrets: string, user: string, role: string, device?: string) {
  const file = device
    ? join(secrets, device, `${role}_mqtt_password`)
    : join(secrets, `${role}_mqtt_password`);
  return { username: user, password: await readFile(file, "utf8") };
}

const probes: MqttProbe[] = [];
async function probeAs(credentials: { username: string; password: string }): Promise<MqttProbe> {
  const probe = await connectProbe(`mqtt://127.0.0.1:${ports.mqtt}`, credentials);
  probes.push(probe);
  return probe;
}

/**
 * Closes a probe before the test ends. The shipped broker binds the client id to the user name
 * (use_username_as_clientid): a probe logged in as the display's user takes the display container's connection,
 * and the two would take it from each other for as long as both are up.
 */
async function closeProbe(probe: MqttProbe): Promise<void> {
  probes.splice(probes.indexOf(probe), 1);
  await probe.close();
}

/**
 * The .env a device maker writes: .env.example with its values filled in, commented-out lines set, and lines
 * given `null` commented out.
 */
function fillEnv(example: string, values: Record<string, string | null>): string {
  const left = new Map(Object.entries(values));
  const lines = example.split("\n").map((line) => {
    const name = /^(?:# )?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
    const value = name === undefined ? undefined : left.get(name);
    if (name === undefined || value === undefined) return line;
    left.delete(name);
    return value === null ? `# ${name}=` : `${name}=${value}`;
  });
  return [...lines, ...[...left].map(([name, value]) => `${name}=${value}`)].join("\n");
}

beforeAll(async () => {
  await requireEngine();
  deviceId = await exampleDeviceId();
  project = uniqueName("stack");
  dir = await mkdtemp(join(tmpdir(), `${project}-`));
  teardown.add(() => rm(dir, { recursive: true, force: true }));

  // Compose builds the images itself (`up --build`), under tags of this test's own.
  const image = uniqueName("image");
  const buildStage = uniqueName("build-stage");
  teardown.add(() => docker(["rmi", "-f", image, buildStage]).catch(() => undefined));

  // What sits next to compose.yaml in a checkout: the broker's files.
  await mkdir(join(dir, "docker/mosquitto"), { recursive: true });
  await copyFile(join(REPO, "docker/mosquitto/mosquitto.conf"), join(dir, "docker/mosquitto/mosquitto.conf"));
  await copyFile(join(REPO, "docker/mosquitto/acl"), join(dir, "docker/mosquitto/acl"));
  await mkdir(join(dir, "identity-provider"));

  // The users script as README says, once per device: each run adds that device's users and passwords and
  // leaves the others alone (the ACL covers every device by pattern). Pointed at the project directory, never at this checkout's files.
  for (const device of [deviceId, OTHER_DEVICE]) {
    await command("sh", [join(REPO, "docker/create-broker-users.sh"), device], {
      env: {
        ...process.env,
        EDGE_SIGNIN_SECRETS_DIR: join(dir, "docker/secrets"),
        EDGE_SIGNIN_ACL_FILE: join(dir, "docker/mosquitto/acl"),
      },
      timeoutMs: 60_000,
    });
  }

  ports = { mqtt: await freePort(), display: await freePort(), idp: await freePort() };
  await writeFile(
    join(dir, ".env"),
    fillEnv(await readFile(join(REPO, ".env.example"), "utf8"), {
      EDGE_SIGNIN_TENANT: null,
      EDGE_SIGNIN_AUTHORITY: `https://${IDP_ORIGIN}/`,
      EDGE_SIGNIN_CLIENT_ID: "edge-signin-dev",
      EDGE_SIGNIN_DEVICE_ID: deviceId,
      // The development provider speaks Entra's dialect of the device flow.
      EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "entra",
      COMPOSE_PROJECT_NAME: project,
      MQTT_PORT: String(ports.mqtt),
      DISPLAY_ADDRESS: "127.0.0.1",
      DISPLAY_PORT: String(ports.display),
    }),
  );
  // Only what the project's .env does not say comes from here: nothing of this machine's own settings leaks in.
  env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !/^(EDGE_SIGNIN_|COMPOSE_|MQTT_PORT$|DISPLAY_)/.test(name),
    ),
  );
  Object.assign(env, {
    EDGE_SIGNIN_TEST_REPO: REPO,
    EDGE_SIGNIN_TEST_IMAGE: image,
    EDGE_SIGNIN_TEST_BUILD_IMAGE: buildStage,
    EDGE_SIGNIN_TEST_IDP_DIR: join(dir, "identity-provider"),
    EDGE_SIGNIN_TEST_IDP_PORT: String(ports.idp),
  });

  // `down -v` always, even after an `up` that failed half-way.
  teardown.add(() => compose(["down", "--volumes", "--remove-orphans", "--timeout", "10"]));
  try {
    // A cold build cache runs `npm ci` and the whole build; a warm one takes seconds.
    await compose(["up", "--detach", "--build"], 15 * 60_000);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await stackLogs()}`, { cause: error });
  }
  teardown.add(async () => {
    await Promise.all(probes.splice(0).map((p) => p.close()));
  });
}, 20 * 60_000);

afterAll(async () => {
  await browser?.close();
  await teardown.run();
}, 180_000);

describe(`compose.yaml, up for real with ${runner.version}`, () => {
  it("runs the broker, the agent and the web display, published on 127.0.0.1 only", async () => {
    const { stdout } = await docker([
      "ps",
      "--filter",
      `label=com.docker.compose.project=${project}`,
      "--format",
      '{{.Label "com.docker.compose.service"}} {{.Ports}}',
    ]);
    const published = new Map(
      stdout
        .trim()
        .split("\n")
        .map((line) => [line.split(" ")[0] ?? "", line.slice(line.indexOf(" ") + 1)] as const),
    );
    expect([...published.keys()].sort(), await stackLogs()).toStrictEqual([
      "agent",
      "display",
      "identity-provider",
      "mosquitto",
    ]);
    expect(published.get("mosquitto")).toBe(`127.0.0.1:${ports.mqtt}->1883/tcp`);
    expect(published.get("display")).toBe(`127.0.0.1:${ports.display}->8080/tcp`);
    expect(published.get("agent")).toBe("");
  });

  it("refuses a prompt from the display's user: the display keeps the agent's code", async () => {
    const secrets = join(dir, "docker/secrets");
    const topics = deviceTopics("edge-signin", deviceId);
    // One connection per user (use_username_as_clientid): the display service steps aside while the test logs in
    // as its user, or the two would keep taking each other's client id.
    await compose(["stop", "display"], 60_000);
    const display = await probeAs(await login(secrets, deviceUser("display", deviceId), "display", deviceId));
    await display.subscribe(topics.display);
    const genuine = (await display.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    const forged = JSON.stringify({
      ...genuine,
      userCode: "EVIL-CODE",
      verificationUri: "https://evil.example/",
    });
    // MQTT 5: Mosquitto answers a denied publish with reason code 135, "not authorized".
    await expect(display.publish(topics.display, forged, { retain: true })).rejects.toMatchObject({
      code: 135,
    });
    await closeProbe(display);
    // A display that connects now still gets the agent's prompt as the retained message.
    const fresh = await probeAs(await login(secrets, deviceUser("display", deviceId), "display", deviceId));
    await fresh.subscribe(topics.display);
    expect((await fresh.next(topics.display)).json<DisplayPayload>()).toStrictEqual(genuine);
    await closeProbe(fresh);
    await compose(["start", "display"], 60_000);
  });

  it("tells the `apps` profile's app container that nobody is signed in: exit 1, signed_out", async () => {
    const app = await runApp();
    expect(app, await stackLogs()).toMatchObject({ exitCode: 1, stdout: "" });
    expect(app.stderr).toContain("edge-signin token: signed_out");
  });

  it("signs a person in from the code on the web display's page in Chromium; another device's users read none of it", async () => {
    const secrets = join(dir, "docker/secrets");
    const topics = deviceTopics("edge-signin", deviceId);
    const other = deviceTopics("edge-signin", OTHER_DEVICE);
    const events = await probeAs(await login(secrets, "events", "events"));
    await events.subscribe("edge-signin/+/events/#");
    const otherAgent = await probeAs(
      await login(secrets, deviceUser("agent", OTHER_DEVICE), "agent", OTHER_DEVICE),
    );
    const otherDisplay = await probeAs(
      await login(secrets, deviceUser("display", OTHER_DEVICE), "display", OTHER_DEVICE),
    );
    for (const probe of [otherAgent, otherDisplay]) {
      await probe.subscribe(`${topics.base}/#`);
      await probe.subscribe(`${other.base}/#`);
    }

    browser = await launchChromium();
    const page = await browser.newPage();
    await gotoPage(page, `http://127.0.0.1:${ports.display}/`);
    await page.waitForSelector('body[data-screen="code"]', { timeout: 30_000 });
    // The code in its reading groups; the address as a person types it, without `https://` (the browser adds it).
    const userCode = (await page.locator("#code .group").allTextContents()).join("-");
    const shown = (await page.locator("#url").textContent()) ?? "";
    expect(shown).toMatch(new RegExp(`^${IDP_ORIGIN}/`));
    const verificationUri = `https://${shown}`;

    const ca = await readFile(join(dir, "identity-provider/ca.pem"), "utf8");
    await approveSignIn(verificationUri, userCode, {
      ca,
      login: "dana",
      connectTo: { [IDP_ORIGIN]: `127.0.0.1:${ports.idp}` },
    });
    await page.waitForSelector('body[data-screen="signed-in-neutral"]', { timeout: 30_000 });
    // As shipped, the retained state the display reads carries no personal data (EDGE_SIGNIN_STATE_ACCOUNT).
    expect(await page.locator("#headline").textContent()).not.toContain("Dana");
    const event = (await events.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    expect(event.claims).toMatchObject({ sub: "dana", name: "Dana", iss: `https://${IDP_ORIGIN}` });

    // Markers sent after the event, on topics each of the other device's users may read: once a marker is
    // in, the event would have been too (Mosquitto routes in order), so "nothing of this device" is final.
    const controller = await probeAs(await login(secrets, "controller", "controller"));
    await controller.publish(other.request("marker"), "after the event");
    await otherAgent.next(other.request("marker"));
    await otherAgent.publish(other.availability, "after the event");
    await otherDisplay.next(other.availability);
    for (const probe of [otherAgent, otherDisplay]) {
      expect(probe.all(topics.event("authenticated"))).toStrictEqual([]);
      expect(probe.all(topics.display)).toStrictEqual([]);
      expect(probe.all(topics.state)).toStrictEqual([]);
    }
  });

  it("gives the `apps` profile's app container a token for the person signed in, and none after sign-out", async () => {
    const app = await runApp();
    expect(app.exitCode, `${app.stderr}\n${await stackLogs()}`).toBe(0);
    const answer = JSON.parse(app.stdout) as Record<string, unknown>;
    expect(answer).toMatchObject({
      accessToken: expect.stringMatching(/^\S{16,}$/) as unknown,
      tokenType: "Bearer",
      scopes: expect.arrayContaining([expect.any(String)]) as unknown,
    });

    const events = await probeAs(await login(join(dir, "docker/secrets"), "events", "events"));
    const topics = deviceTopics("edge-signin", deviceId);
    await events.subscribe(topics.event("signed_out"));
    expect(await commandAgent("sign-out")).toMatchObject({ status: "ok" });
    await events.next(topics.event("signed_out"));
    await closeProbe(events);
    const after = await runApp();
    expect(after).toMatchObject({ exitCode: 1, stdout: "" });
    expect(after.stderr).toContain("edge-signin token: signed_out");
  });
});
