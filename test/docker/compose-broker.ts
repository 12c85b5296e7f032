/**
 * The broker of compose.yaml as it ships: the `eclipse-mosquitto:2` image with docker/mosquitto/mosquitto.conf
 * unchanged, the ACL, and the password file made by docker/create-broker-users.sh (which runs mosquitto_passwd in
 * the same image). Only the published port differs (a free one on 127.0.0.1), and the ACL is a copy, so a test
 * can prove that provisioning never writes to it.
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

/** A device's agent or display, or a shared user (`events-K`: the extra consumers of `--consumers N`). */
export type Role = "agent" | "display" | "events" | "controller" | "fleet" | `events-${number}`;

export interface ComposeBroker {
  readonly url: string;
  /** The device .env.example names (EDGE_SIGNIN_DEVICE_ID). */
  readonly deviceId: string;
  /** Where the users script wrote the passwords, and the copy of the ACL the broker reads. */
  readonly secrets: string;
  readonly acl: string;
  /** The credentials of `role` for `deviceId` (default: .env.example's device). */
  credentials(role: Role, deviceId?: string): Promise<{ username: string; password: string }>;
  /** Runs docker/create-broker-users.sh with `args` (device ids, `--count N --prefix P`), as a person adding
   * devices would, and reloads the broker (SIGHUP) until the first new device's agent gets in. */
  addDevices(...args: string[]): Promise<void>;
  log(): Promise<string>;
  close(): Promise<void>;
}

/** The device id .env.example names (EDGE_SIGNIN_DEVICE_ID): the one compose.yaml runs by default. */
export async function exampleDeviceId(): Promise<string> {
  const match = /^EDGE_SIGNIN_DEVICE_ID=(\S+)$/m.exec(await readFile(join(REPO, ".env.example"), "utf8"));
  if (!match?.[1]) throw new Error(".env.example names no EDGE_SIGNIN_DEVICE_ID");
  return match[1];
}

/** The broker user names of a device's agent and display (docker/mosquitto/acl's patterns key on them). */
export function deviceUser(role: "agent" | "display", deviceId: string): string {
  return role === "agent" ? deviceId : `edge-signin/${deviceId}`;
}

/**
 * The user names whose password-file entries `after` has beyond `before`; throws when `after` does not keep every
 * entry of `before` unchanged and in place (what adding users must never disturb).
 */
export function appendedUsers(before: string, after: string): string[] {
  if (!after.startsWith(before)) throw new Error("the password file's existing entries changed");
  return after
    .slice(before.length)
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(":")[0] ?? "");
}

/** Runs the users script (in the Mosquitto image, as shipped) with its output moved to `secrets` and `acl`. */
export async function createBrokerUsers(secrets: string, acl: string, ...args: string[]): Promise<void> {
  await run("sh", [USERS_SCRIPT, ...args], {
    env: { ...process.env, EDGE_SIGNIN_SECRETS_DIR: secrets, EDGE_SIGNIN_ACL_FILE: acl },
    maxBuffer: 1 << 20,
  });
}

export async function startComposeBroker(): Promise<ComposeBroker> {
  const deviceId = await exampleDeviceId();
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-compose-broker-"));
  const secrets = join(dir, "secrets");
  const acl = join(dir, "acl");
  await mkdir(secrets);
  await copyFile(ACL, acl);
  await createBrokerUsers(secrets, acl, deviceId);

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
      if (role === "agent" || role === "display")
        return {
          username: deviceUser(role, device),
          password: await readFile(join(secrets, device, `${role}_mqtt_password`), "utf8"),
        };
      return { username: role, password: await readFile(join(secrets, `${role}_mqtt_password`), "utf8") };
    };
    const broker: ComposeBroker = {
      url,
      deviceId,
      secrets,
      acl,
      credentials,
      async addDevices(...args) {
        await createBrokerUsers(secrets, acl, ...args);
        await run("docker", ["kill", "--signal", "HUP", name]);
        // Mosquitto reloads the password file and the ACL on SIGHUP; wait until the new user gets in.
        const first = args[0] === "--count" ? `${args[3] ?? "device-"}1` : args[0];
        const consumers = args.indexOf("--consumers");
        if (consumers === 0) await waitForLogin(url, await credentials(`events-${Number(args[1])}`), log);
        else if (first) await waitForLogin(url, await credentials("agent", first), log);
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
