/**
 * Issue 16, findings 1 and 9 (configuration): what the agent runs and where it keeps its files, with the shipped
 * bundle. Nothing compiled comes from STATE_DIR; STATE_DIR is private whatever the umask and refused when others
 * can write it; every configuration problem is one line naming the variable, exit code 2.
 */
import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, SHIPPED_BIN } from "../helpers/cli.js";

const AGENT_BUNDLE = fileURLToPath(new URL("../../dist/bundle/agent.cjs", import.meta.url));

/** A configuration that passes validation; the broker port is closed, the agent just keeps trying. */
const VALID = {
  EDGE_SIGNIN_TENANT: "contoso",
  EDGE_SIGNIN_CLIENT_ID: "11111111-2222-3333-4444-555555555555",
  EDGE_SIGNIN_DEVICE_ID: "attack-review",
  EDGE_SIGNIN_MQTT_URL: "mqtt://127.0.0.1:9",
};

/**
 * `code-cache.bin` as the launcher before this fix kept it in STATE_DIR (format EScc0001: CRC-32, key =
 * Node version, arch, the bundle's size and mtime), but compiled from another script of exactly the bundle's
 * length: V8 checks only the length, so that script ran instead of the agent. Made in a child process with the
 * agent's V8 flags, as the old launcher loaded it.
 */
function plantOldFormatCache(file: string, marker: string): void {
  const maker = `
    const { setFlagsFromString } = require("node:v8");
    setFlagsFromString("--liftoff-only");
    const { readFileSync, statSync, writeFileSync } = require("node:fs");
    const { Script } = require("node:vm");
    const { crc32 } = require("node:zlib");
    const [bundle, out, marker] = process.argv.slice(1);
    const real = readFileSync(bundle, "utf8");
    let evil = "process.stdout.write(" + JSON.stringify(marker + "\\n") + ");process.exit(42);//";
    evil += "x".repeat(real.length - evil.length);
    const script = new Script("(function (exports, require, module, __filename, __dirname) {" + evil + "\\n})", {
      filename: bundle,
    });
    const data = script.createCachedData();
    const stat = statSync(bundle);
    const key = Buffer.from(process.version + " " + process.arch + " " + stat.size + " " + stat.mtimeMs + "\\nsigned_in");
    const body = Buffer.concat([Buffer.alloc(2), key, data]);
    body.writeUInt16BE(key.length, 0);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body), 0);
    writeFileSync(out, Buffer.concat([Buffer.from("EScc0001"), crc, body]));
  `;
  const made = spawnSync(process.execPath, ["-e", maker, AGENT_BUNDLE, file, marker], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`could not make the planted cache: ${made.stderr}`);
}

describe("the state directory holds data, never code, and is the agent's alone", () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "edge-signin-state-security-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("never runs compiled code planted in STATE_DIR (finding 1)", async () => {
    const stateDir = join(root, "planted");
    await mkdir(stateDir, { mode: 0o700 });
    plantOldFormatCache(join(stateDir, "code-cache.bin"), "PLANTED CODE RAN");
    // Without CLIENT_ID the agent itself stops at its configuration: the planted script would have exited 42 first.
    const result = await runCli(["agent"], {
      EDGE_SIGNIN_TENANT: "contoso",
      EDGE_SIGNIN_STATE_DIR: stateDir,
    });
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toStrictEqual({
      code: 2,
      stdout: "",
      stderr: "edge-signin: EDGE_SIGNIN_CLIENT_ID: is required\n",
    });
  });

  it("loads the code cache shipped beside the bundle, made for exactly this bundle", async () => {
    const stateDir = join(root, "shipped-cache");
    const agent = spawn(process.execPath, [SHIPPED_BIN, "agent"], {
      env: {
        PATH: process.env["PATH"] ?? "",
        ...VALID,
        EDGE_SIGNIN_STATE_DIR: stateDir,
        EDGE_SIGNIN_LOG_LEVEL: "debug",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    agent.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    try {
      await expect.poll(() => out, { timeout: 20_000 }).toContain('"msg":"code cache"');
      const line = out.split("\n").find((l) => l.includes('"msg":"code cache"')) ?? "{}";
      const { status, file } = JSON.parse(line) as { status?: string; file?: string };
      expect({ status, file }).toStrictEqual({ status: "used", file: `${AGENT_BUNDLE}.cache` });
    } finally {
      agent.kill("SIGKILL");
    }
  });

  it("creates STATE_DIR and its files private under umask 000 (finding 1)", async () => {
    const stateDir = join(root, "umask", "state");
    // The shell sets the umask the agent inherits, as a careless init system would.
    const agent = spawn("sh", ["-c", 'umask 000 && exec "$0" "$@"', process.execPath, SHIPPED_BIN, "agent"], {
      env: { PATH: process.env["PATH"] ?? "", ...VALID, EDGE_SIGNIN_STATE_DIR: stateDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const health = join(stateDir, "health.json");
      await expect
        .poll(
          () =>
            stat(health).then(
              () => true,
              () => false,
            ),
          { timeout: 20_000 },
        )
        .toBe(true);
      const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);
      expect({
        stateDir: await mode(stateDir),
        health: await mode(health),
        outbox: await mode(join(stateDir, "outbox")),
      }).toStrictEqual({ stateDir: "700", health: "600", outbox: "700" });
    } finally {
      agent.kill("SIGKILL");
    }
  });

  it.each([
    ["every user", 0o777, "can be written by every user (mode 777)"],
    ["its group", 0o770, "can be written by its group (mode 770)"],
  ])("refuses to start on a STATE_DIR %s can write, in one line (finding 1)", async (_who, mode, problem) => {
    const stateDir = join(root, `open-${mode.toString(8)}`);
    await mkdir(stateDir);
    await chmod(stateDir, mode);
    const result = await runCli(["agent"], { ...VALID, EDGE_SIGNIN_STATE_DIR: stateDir }, 20_000);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toStrictEqual({
      code: 2,
      stdout: "",
      stderr: `edge-signin: EDGE_SIGNIN_STATE_DIR: ${stateDir} ${problem}; it must be the agent's alone: chmod go-w ${stateDir}\n`,
    });
  });
});

describe("every configuration problem is one line naming the variable, exit code 2 (finding 9)", () => {
  // Made at once (not in a hook): the expected lines below name these paths.
  const root = mkdtempSync(join(tmpdir(), "edge-signin-config-security-"));
  const files = {
    pemless: join(root, "cert.pem"),
    damaged: join(root, "damaged.pem"),
    key: join(root, "key.pem"),
    directory: join(root, "a-directory"),
    stateFile: join(root, "state"),
  };

  beforeAll(async () => {
    await writeFile(files.pemless, "this is not a certificate\n");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(files.key, privateKey.export({ format: "pem", type: "pkcs8" }));
    await writeFile(
      files.damaged,
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    await mkdir(files.directory);
    await writeFile(files.stateFile, "a file, not a directory\n");
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const cases: Array<[string, () => Record<string, string>, string | string[]]> = [
    [
      "a control character",
      () => ({ EDGE_SIGNIN_MQTT_USERNAME: "tv\u001b[2J\nadmin" }),
      "EDGE_SIGNIN_MQTT_USERNAME: contains a control character (newline, tab, escape, ...)",
    ],
    [
      "a control character in a secret",
      () => ({ EDGE_SIGNIN_MQTT_PASSWORD: "pass\rword" }),
      "EDGE_SIGNIN_MQTT_PASSWORD: contains a control character (newline, tab, escape, ...)",
    ],
    [
      "a 65,000-character topic prefix",
      () => ({ EDGE_SIGNIN_TOPIC_PREFIX: "a".repeat(65_000) }),
      "EDGE_SIGNIN_TOPIC_PREFIX: expected at most 256 bytes",
    ],
    [
      "$SYS as the topic prefix",
      () => ({ EDGE_SIGNIN_TOPIC_PREFIX: "$SYS/edge-signin" }),
      "EDGE_SIGNIN_TOPIC_PREFIX: expected a topic not starting with $ (reserved for the broker, e.g. $SYS)",
    ],
    [
      "an unreadable CA file",
      () => ({ EDGE_SIGNIN_MQTT_CA_FILE: files.directory }),
      `EDGE_SIGNIN_MQTT_CA_FILE: cannot read file ${files.directory} (EISDIR)`,
    ],
    [
      "a PEM-less CA file",
      () => ({ EDGE_SIGNIN_MQTT_CA_FILE: files.pemless }),
      `EDGE_SIGNIN_MQTT_CA_FILE: ${files.pemless} holds no PEM block (-----BEGIN ...-----)`,
    ],
    [
      "a PEM-less certificate file",
      () => ({ EDGE_SIGNIN_MQTT_CERT_FILE: files.pemless, EDGE_SIGNIN_MQTT_KEY_FILE: files.key }),
      `EDGE_SIGNIN_MQTT_CERT_FILE: ${files.pemless} holds no PEM block (-----BEGIN ...-----)`,
    ],
    [
      "a damaged certificate",
      () => ({ EDGE_SIGNIN_MQTT_CA_FILE: files.damaged }),
      `EDGE_SIGNIN_MQTT_CA_FILE: ${files.damaged} holds no usable PEM certificate`,
    ],
    [
      "a key file that holds no key (one line per problem)",
      () => ({ EDGE_SIGNIN_MQTT_CERT_FILE: files.damaged, EDGE_SIGNIN_MQTT_KEY_FILE: files.damaged }),
      [
        `EDGE_SIGNIN_MQTT_CERT_FILE: ${files.damaged} holds no usable PEM certificate`,
        `EDGE_SIGNIN_MQTT_KEY_FILE: ${files.damaged} holds no usable unencrypted private key`,
      ],
    ],
    [
      "a PEM-less provider CA file",
      () => ({ EDGE_SIGNIN_IDP_CA_FILE: files.pemless }),
      `EDGE_SIGNIN_IDP_CA_FILE: ${files.pemless} holds no PEM block (-----BEGIN ...-----)`,
    ],
    [
      "a STATE_DIR that is a file",
      () => ({ EDGE_SIGNIN_STATE_DIR: files.stateFile }),
      `EDGE_SIGNIN_STATE_DIR: ${files.stateFile} is not a directory`,
    ],
    [
      "a STATE_DIR that cannot be created",
      () => ({ EDGE_SIGNIN_STATE_DIR: join(files.stateFile, "below") }),
      `EDGE_SIGNIN_STATE_DIR: ${join(files.stateFile, "below")} cannot be created (ENOTDIR)`,
    ],
  ];

  it.each(cases)("%s", async (_name, overrides, line) => {
    const env = { ...VALID, EDGE_SIGNIN_STATE_DIR: join(root, "state-ok"), ...overrides() };
    const result = await runCli(["agent"], env, 20_000);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toStrictEqual({
      code: 2,
      stdout: "",
      stderr: [line]
        .flat()
        .map((l) => `edge-signin: ${l}\n`)
        .join(""),
    });
  });

  it("says so in the README's list of exit codes", async () => {
    const readme = await readFile(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
    expect(readme).toMatch(/\| *`2` *\|[^\n]*STATE_DIR/);
  });
});
