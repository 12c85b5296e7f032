/**
 * The broker of compose.yaml, without a container engine: the real `mosquitto` binary with
 * docker/mosquitto/mosquitto.conf and docker/mosquitto/acl, users made by docker/create-broker-users.sh.
 * Only what the container provides differs: paths move to a temp dir and the listener to a free loopback port.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chown, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import mqtt from "mqtt";
import { findMosquittoBinary } from "../helpers/broker.js";

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL("../../", import.meta.url));
const CONF = join(REPO, "docker/mosquitto/mosquitto.conf");
const ACL = join(REPO, "docker/mosquitto/acl");
const USERS_SCRIPT = join(REPO, "docker/create-broker-users.sh");

export type Role = "agent" | "display" | "events" | "controller";

export interface ComposeBroker {
  readonly url: string;
  /** The device the ACL file is written for (its `<device>-agent` user). */
  readonly deviceId: string;
  credentials(role: Role): { username: string; password: string };
  log(): string;
  close(): Promise<void>;
}

/** The device id of the first `user <device>-agent` block: the one compose.yaml's .env.example names. */
export async function aclDeviceId(): Promise<string> {
  const match = /^user (\S+)-agent$/m.exec(await readFile(ACL, "utf8"));
  if (!match?.[1]) throw new Error(`${ACL} has no "user <device>-agent" line`);
  return match[1];
}

/** Rewrites the container paths and the listener; fails if a directive it must rewrite is gone. */
export function adaptConfig(
  conf: string,
  paths: { port: number; passwd: string; acl: string; data: string },
) {
  const rewrites: Array<[RegExp, string]> = [
    [/^listener 1883$/m, `listener ${paths.port} 127.0.0.1`],
    [/^password_file \/mosquitto\/secrets\/passwd$/m, `password_file ${paths.passwd}`],
    [/^acl_file \/mosquitto\/config\/acl$/m, `acl_file ${paths.acl}`],
    [/^persistence_location \/mosquitto\/data\/$/m, `persistence_location ${paths.data}/`],
  ];
  let adapted = conf;
  for (const [pattern, replacement] of rewrites) {
    if (!pattern.test(adapted)) throw new Error(`docker/mosquitto/mosquitto.conf lacks ${pattern.source}`);
    adapted = adapted.replace(pattern, replacement);
  }
  return adapted;
}

export async function startComposeBroker(): Promise<ComposeBroker> {
  const binary = findMosquittoBinary();
  if (!binary)
    throw new Error("no mosquitto binary found: apt-get install mosquitto (it ships mosquitto_passwd)");
  const deviceId = await aclDeviceId();
  const dir = await mkdtemp(join(tmpdir(), "edge-signin-compose-broker-"));
  const secrets = join(dir, "secrets");
  // The script under test makes the users, with the host's mosquitto_passwd instead of the image's.
  await run("sh", [USERS_SCRIPT, "--local", deviceId], {
    env: { ...process.env, EDGE_SIGNIN_SECRETS_DIR: secrets },
  });
  const port = await freePort();
  await mkdir(join(dir, "data"));
  await copyFile(ACL, join(dir, "acl"));
  await writeFile(
    join(dir, "mosquitto.conf"),
    adaptConfig(await readFile(CONF, "utf8"), {
      port,
      passwd: join(secrets, "mosquitto_passwd"),
      acl: join(dir, "acl"),
      data: join(dir, "data"),
    }),
  );
  await handToBrokerUser(dir);

  const passwords = new Map<Role, string>();
  for (const role of ["agent", "display", "events", "controller"] as const) {
    passwords.set(role, await readFile(join(secrets, `${role}_mqtt_password`), "utf8"));
  }
  const usernames: Record<Role, string> = {
    agent: `${deviceId}-agent`,
    display: `${deviceId}-display`,
    events: "events",
    controller: "controller",
  };
  const credentials = (role: Role) => ({ username: usernames[role], password: passwords.get(role) ?? "" });

  let output = "";
  const child: ChildProcess = spawn(binary, ["-c", join(dir, "mosquitto.conf")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const url = `mqtt://127.0.0.1:${port}`;
  const broker: ComposeBroker = {
    url,
    deviceId,
    credentials,
    log: () => output,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitForLogin(url, credentials("events"), child, () => output);
  } catch (error) {
    await broker.close();
    throw error;
  }
  return broker;
}

/**
 * Started as root, Mosquitto drops to its own user before it reads the password file, exactly as in the
 * eclipse-mosquitto image (where the script hands the file to uid 1883): give it the files the same way.
 */
async function handToBrokerUser(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const ids = await Promise.all([run("id", ["-u", "mosquitto"]), run("id", ["-g", "mosquitto"])]).catch(
    () => undefined,
  );
  if (!ids) return; // No such user: Mosquitto then stays root and reads everything.
  const [uid, gid] = ids.map((r) => Number(r.stdout.trim())) as [number, number];
  const walk = async (path: string): Promise<void> => {
    await chown(path, uid, gid);
    for (const entry of await readdir(path, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(path, entry.name));
      else await chown(join(path, entry.name), uid, gid);
    }
  };
  await walk(dir);
}

async function waitForLogin(
  url: string,
  login: { username: string; password: string },
  child: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}):\n${log()}`);
    try {
      const client = await mqtt.connectAsync(url, { ...login, reconnectPeriod: 0, connectTimeout: 2_000 });
      await client.endAsync();
      return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  throw new Error(`the compose broker at ${url} did not accept a login within 10 s (${last}):\n${log()}`);
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
