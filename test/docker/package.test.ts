import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveSignIn } from "../../src/dev/person.js";
import {
  deviceTopics,
  type DisplayPayload,
  type EventPayload,
  type StatePayload,
} from "../../src/mqtt/topics.js";
import { startTestBed, type TestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";
import { REPO } from "./compose-broker.js";

/**
 * What the runtime stage of docker/Dockerfile holds, without an engine: the packed project installed with
 * production dependencies only (`--omit=dev --ignore-scripts`, as the Dockerfile does) into an empty
 * directory, and run from there. A module that needs a dev dependency fails here.
 */
const run = promisify(execFile);
const NPM_TIMEOUT_MS = 240_000;

interface Installed {
  readonly dir: string;
  readonly bin: string;
  readonly files: readonly string[];
}

/** Files under a directory, relative to it, with their modification times. */
async function listFiles(root: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else files.set(relative(root, path), (await stat(path)).mtimeMs);
    }
  };
  await walk(root);
  return files;
}

async function packAndInstall(work: string): Promise<Installed> {
  // `npm pack` runs `prepare`, which compiles dist/ from the sources, as the image's build stage does.
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], {
    cwd: REPO,
    timeout: NPM_TIMEOUT_MS,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  if (!packed) throw new Error(`npm pack printed no result: ${stdout}`);
  const dir = join(work, "app");
  await mkdir(dir);
  await writeFile(join(dir, "package.json"), '{ "private": true }\n');
  await run(
    "npm",
    [
      "install",
      "--omit=dev",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      join(work, packed.filename),
    ],
    { cwd: dir, timeout: NPM_TIMEOUT_MS },
  );
  return {
    dir,
    bin: join(dir, "node_modules/.bin/edge-signin"),
    files: packed.files.map((f) => f.path),
  };
}

describe("the packed project, installed with production dependencies only", () => {
  let work: string;
  let installed: Installed;
  let bed: TestBed;
  let probe: MqttProbe;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "edge-signin-pack-"));
    [installed, bed] = await Promise.all([packAndInstall(work), startTestBed()]);
    probe = await connectProbe(bed.broker.url);
    await probe.subscribe("edge-signin/#");
  }, NPM_TIMEOUT_MS * 2);
  afterAll(async () => {
    await probe?.close();
    await bed?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("ships the compiled code and the README, and no sources, tests or secrets", () => {
    expect(installed.files).toContain("dist/src/main.js");
    expect(installed.files).toContain("dist/src/index.js");
    expect(installed.files).toContain("README.md");
    const unexpected = installed.files.filter(
      (path) =>
        !path.startsWith("dist/src/") &&
        !path.startsWith("dist/bundle/") &&
        !["README.md", "package.json", "LICENSE"].includes(path),
    );
    expect(unexpected).toStrictEqual([]);
    expect(installed.files.filter((path) => path.endsWith(".ts") && !path.endsWith(".d.ts"))).toStrictEqual(
      [],
    );
  });

  it("loads every runtime module (all but the demo's dev parts) without a dev dependency", async () => {
    const dist = join(installed.dir, "node_modules/edge-signin/dist/src");
    const modules = [...(await listFiles(dist)).keys()].filter(
      (path) =>
        path.endsWith(".js") &&
        path !== "main.js" && // Runs the CLI on import; the next test runs it for real.
        path !== "launch.js" && // The bundle's entry point (needs cli.mjs beside it); runs on import too.
        !path.startsWith("dev/") && // The demo's broker and identity provider: dev dependencies by design.
        path !== "commands/demo.js",
    );
    expect(modules.length).toBeGreaterThan(10);
    const script = `for (const m of ${JSON.stringify(modules)}) await import("./" + m);`;
    const result = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: dist }).then(
      () => "loaded",
      (error: { stderr?: string; message?: string }) => error.stderr || error.message || "failed",
    );
    expect(result).toBe("loaded");
    // And the library entry point resolves through package.json's exports.
    const library = await run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'const m = await import("edge-signin"); console.log(typeof m.createAgent);',
      ],
      { cwd: installed.dir },
    );
    expect(library.stdout.trim()).toBe("function");
  });

  /** `edge-signin agent` from the installed bin and the install directory, as the image runs it from /app. */
  function startInstalledAgent(env: Record<string, string>) {
    const agent = spawn(installed.bin, ["agent"], {
      cwd: installed.dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    agent.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    agent.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | string>((resolve) =>
      agent.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
    );
    return { agent, output: () => output, exited };
  }

  it("signs a person in from the installed package, writes only to STATE_DIR and reports healthy", async () => {
    const home = await mkdtemp(join(tmpdir(), "edge-signin-home-"));
    const env: Record<string, string> = {
      ...bed.env({ EDGE_SIGNIN_HEALTH_INTERVAL_SECONDS: "1" }),
      PATH: process.env["PATH"] ?? "",
      HOME: home,
      NODE_ENV: "production",
    };
    const stateDir = env["EDGE_SIGNIN_STATE_DIR"] ?? "";
    const topics = deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? "");
    const before = await listFiles(installed.dir);
    const started = Date.now();
    const { agent, output, exited } = startInstalledAgent(env);
    try {
      const display = (
        await probe
          .next(topics.display, (m) => m.payload.length > 0, 60_000)
          .catch((error: Error) => {
            throw new Error(`${error.message}\n--- agent output ---\n${output()}`);
          })
      ).json<DisplayPayload>();
      await approveSignIn(display.verificationUri, display.userCode, { ca: bed.idp.caPem, login: "carol" });
      const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
      expect(event).toMatchObject({ type: "authenticated", method: "device_code", claims: { sub: "carol" } });
      await probe.next(topics.state, (m) => m.json<StatePayload>().state === "signed_in");

      const health = await run(installed.bin, ["health"], { cwd: installed.dir, env });
      expect(health.stdout).toMatch(
        /^healthy: state signed_in since \S+, broker connected \(MQTT 5\), heartbeat \d+ s ago\n$/,
      );

      agent.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      agent.kill("SIGKILL");
    }

    // A read-only root file system would have refused any write outside STATE_DIR: there was none.
    const after = await listFiles(installed.dir);
    const written = [...after].filter(([path, mtime]) => before.get(path) !== mtime).map(([path]) => path);
    expect(written).toStrictEqual([]);
    const inHome = [...(await listFiles(home))].filter(([, mtime]) => mtime >= started).map(([path]) => path);
    expect(inHome).toStrictEqual([]);
    expect((await listFiles(stateDir)).size).toBeGreaterThan(0);
    await rm(home, { recursive: true, force: true });
  }, 180_000);

  it("starts `agent` from the V8 code cache shipped in the package, and writes none to STATE_DIR", async () => {
    const env: Record<string, string> = {
      ...bed.env({ EDGE_SIGNIN_LOG_LEVEL: "debug" }),
      PATH: process.env["PATH"] ?? "",
      NODE_ENV: "production",
    };
    const { agent, output, exited } = startInstalledAgent(env);
    try {
      await expect.poll(output, { timeout: 60_000, interval: 100 }).toContain('"msg":"code issued"');
      agent.kill("SIGTERM");
      await exited;
      const line =
        output()
          .split("\n")
          .find((l) => l.includes('"msg":"code cache"')) ?? "{}";
      const { status, file } = JSON.parse(line) as { status?: unknown; file?: string };
      expect({
        status,
        shipped: file?.endsWith("/node_modules/edge-signin/dist/bundle/agent.cjs.cache"),
      }).toStrictEqual({
        status: "used",
        shipped: true,
      });
      // Compiled code never goes where the agent keeps its data.
      expect(
        [...(await listFiles(env["EDGE_SIGNIN_STATE_DIR"] ?? ""))]
          .map(([path]) => path)
          .filter((p) => /cache\.bin|\.cache$/.test(p)),
      ).toStrictEqual([]);
    } finally {
      agent.kill("SIGKILL");
    }
  }, 180_000);
});
