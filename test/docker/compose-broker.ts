/**
 * The broker of compose.yaml as it ships: the `eclipse-mosquitto:2` image with docker/mosquitto/mosquitto.conf
 * unchanged, the ACL, and the password file made by docker/create-broker-users.sh (which runs mosquitto_passwd in
 * the same image). Only the published port differs (a free one on 127.0.0.1), and the ACL is a copy, since the
 * script appends a device's blocks to it.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import mqtt from "mqtt";

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL("../../", import.meta.url));
const CONF = join(REPO, "docker/mosquitto/mosquitto.conf");
const ACL = join(REPO, "docker/mosquitto/acl");
export const USERS_SCRIPT = join(REPO, "docker/create-broker-users.sh");
const IMAGE = "eclipse-mosquitto:2";

export type Role = "agent" | "display" | "events" | "controller";

export interface ComposeBroker {
  readonly url: string;
  /** The device the ACL file is written for (its `<device>-agent` user). */
  readonly deviceId: string;
  /** Where the users script wrote the passwords, and the ACL copy it appends to. */
  readonly secrets: string;
  readonly acl: string;
  /** The credentials of `role` for `deviceId` (default: the ACL's first device). */
  credentials(role: Role, deviceId?: string): Promise<{ username: string; password: string }>;
  /** Runs docker/create-broker-users.sh for a device, as a person adding it would, and reloads the broker (SIGHUP). */
  addDevice(deviceId: string): Promise<void>;
  log(): Promise<string>;
  close(): Promise<void>;
}

/** The device id of the first `user <device>-agent` block: the one compose.yaml's .env.example names. */
export async function aclDeviceId(): Promise<string> {
  const match = /^user (\S+)-agent$/m.exec(await readFile(ACL, "utf8"));
  if (!match?.[1]) throw new Error(`${ACL} has no "user <device>-agent" line`);
  return match[1];
}

/** Runs the users script (in the Mosquitto image, as shipped) with its output dirs moved to `secrets` and `acl`. */
export async function createBrokerUsers(deviceId: string, secrets: string, acl: string): Promise<void> {
  await run("sh", [USERS_SCRIPT, deviceId], {
    env: { ...process.env, EDGE_SIGNIN_SECRETS_DIR: secrets, EDGE_SIGNIN_ACL_FILE: acl },
  });
}

export async function startComposeBroker(): Promise<ComposeBroker> {
  const deviceId = await aclDeviceId();
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-compose-broker-"));
  const secrets = join(dir, "secrets");
  const acl = join(dir, "acl");
  await mkdir(secrets);
  await copyFile(ACL, acl);
  await createBrokerUsers(deviceId, secrets, acl);

  const name = `edge-signin-test-compose-broker-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  await run("docker", [
    "run",
    "--detach",
    "--name",
    name,
    "--publish",
    "127.0.0.1::1883",
    "--volume",
    `${CONF}:/mosquitto/config/mosquitto.conf:ro`,
    "--volume",
    `${acl}:/mosquitto/config/acl:ro`,
    "--volume",
    `${join(secrets, "mosquitto_passwd")}:/mosquitto/secrets/passwd:ro`,
    IMAGE,
  ]);
  const log = async () => {
    const { stdout, stderr } = await run("docker", ["logs", name]).catch(() => ({ stdout: "", stderr: "" }));
    return stdout + stderr;
  };
  const close = async () => {
    await run("docker", ["rm", "--force", "--volumes", name]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const { stdout } = await run("docker", ["port", name, "1883/tcp"]);
    const port = /127\.0\.0\.1:(\d+)/.exec(stdout)?.[1];
    if (!port) throw new Error(`docker port ${name}: no loopback port in "${stdout.trim()}"`);
    const url = `mqtt://127.0.0.1:${port}`;
    const credentials = async (role: Role, device = deviceId) => {
      const shared = role === "events" || role === "controller";
      const file = shared
        ? join(secrets, `${role}_mqtt_password`)
        : join(secrets, device, `${role}_mqtt_password`);
      return { username: shared ? role : `${device}-${role}`, password: await readFile(file, "utf8") };
    };
    const broker: ComposeBroker = {
      url,
      deviceId,
      secrets,
      acl,
      credentials,
      async addDevice(id) {
        await createBrokerUsers(id, secrets, acl);
        await run("docker", ["kill", "--signal", "HUP", name]);
        // Mosquitto reloads the password file and the ACL on SIGHUP; wait until the new user gets in.
        await waitForLogin(url, await credentials("agent", id), log);
      },
      log,
      close,
    };
    await waitForLogin(url, await credentials("events"), log);
    return broker;
  } catch (error) {
    await close();
    throw error;
  }
}

async function waitForLogin(
  url: string,
  login: { username: string; password: string },
  log: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const client = await mqtt.connectAsync(url, { ...login, reconnectPeriod: 0, connectTimeout: 2_000 });
      await client.endAsync();
      return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  throw new Error(
    `the compose broker at ${url} did not accept ${login.username} within 15 s (${last}):\n${await log()}`,
  );
}

/** A TCP port free on 127.0.0.1 when probed (another process may take it before the caller binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no free port")),
      );
    });
  });
}
