import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

/** A TypeScript program a library user would write, type-checked strictly against the built package. */
const CONSUMER = `
import {
  createAgent,
  loadConfig,
  verifyWebhook,
  CommandRefusedError,
  type Authenticated,
  type AgentEvents,
  type Reporter,
} from "edge-signin";
import type { EventEmitter } from "eventemitter3";

const config = loadConfig({
  EDGE_SIGNIN_TENANT: "contoso",
  EDGE_SIGNIN_CLIENT_ID: "00000000-0000-0000-0000-000000000000",
  EDGE_SIGNIN_DEVICE_ID: "library-test",
  EDGE_SIGNIN_STATE_DIR: process.argv[2] ?? "./state",
});

class Doorbell implements Reporter {
  readonly name = "doorbell";
  start(events: EventEmitter<AgentEvents>): Promise<void> {
    events.on("authenticated", (e: Authenticated) => {
      const verified: true = e.verified;
      console.log(verified, e.claims["sub"], e.account.name);
    });
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

const agent = createAgent(config, { reporters: [new Doorbell()] });
agent.on("prompt", (p) => console.log(p.userCode.toUpperCase(), p.verificationUri));
agent.on("state", ({ state }) => console.log(state satisfies string));
// @ts-expect-error an event the agent does not raise is a type error
agent.on("no_such_event", () => undefined);
const start: () => Promise<void> = () => agent.start();
const stop: () => Promise<void> = () => agent.stop();
const signOut: () => Promise<unknown> = () => agent.signOut();
const signIn: () => unknown = () => agent.signIn();
const refused = new CommandRefusedError("x") instanceof Error;
console.log(
  JSON.stringify({
    createAgent: typeof createAgent,
    start: typeof start,
    stop: typeof stop,
    signIn: typeof agent.signIn,
    signOut: typeof signOut,
    unused: typeof signIn,
    state: agent.state.state,
    verifyWebhook: typeof verifyWebhook,
    refused,
  }),
);
`;

describe("the package as a TypeScript library", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-consumer-"));
    // Installed the way npm would: package.json and the compiled dist/ under node_modules/edge-signin.
    const pkg = join(dir, "node_modules", "edge-signin");
    await mkdir(pkg, { recursive: true });
    await cp(join(ROOT, "package.json"), join(pkg, "package.json"));
    await run(
      process.execPath,
      [TSC, "-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(pkg, "dist")],
      {
        cwd: ROOT,
      },
    );
    // Its dependencies (and @types/node for the consumer) come from this checkout's node_modules.
    await symlink(join(ROOT, "node_modules"), join(pkg, "node_modules"), "dir");
    await symlink(join(ROOT, "node_modules", "@types"), join(dir, "node_modules", "@types"), "dir");
    await symlink(
      join(ROOT, "node_modules", "eventemitter3"),
      join(dir, "node_modules", "eventemitter3"),
      "dir",
    );
    await writeFile(
      join(dir, "package.json"),
      JSON.stringify({ name: "consumer", type: "module", private: true }),
    );
    await writeFile(join(dir, "consumer.ts"), CONSUMER);
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          verbatimModuleSyntax: true,
          types: ["node"],
          outDir: "out",
        },
        files: ["consumer.ts"],
      }),
    );
  }, 240_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("exports point at the compiled entry point and its declarations", async () => {
    const manifest = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      exports: Record<string, Record<string, string>>;
    };
    const entry = manifest.exports["."];
    expect(entry?.["types"]).toBe("./dist/src/index.d.ts");
    expect(entry?.["import"] ?? entry?.["default"]).toBe("./dist/src/index.js");
    // "types" must come first, or TypeScript never reads it.
    expect(Object.keys(entry ?? {})[0]).toBe("types");
  });

  it("type-checks a strict consumer and runs it against the built package", async () => {
    const compiled = await run(process.execPath, [TSC, "-p", join(dir, "tsconfig.json")], { cwd: dir }).catch(
      (error: Error & { stdout?: string }) => {
        throw new Error(`consumer does not type-check:\n${error.stdout || error.message}`);
      },
    );
    expect(compiled.stdout).toBe("");
    const { stdout } = await run(process.execPath, [join(dir, "out", "consumer.js"), join(dir, "state")], {
      cwd: dir,
    });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}")).toStrictEqual({
      createAgent: "function",
      start: "function",
      stop: "function",
      signIn: "function",
      signOut: "function",
      unused: "function",
      state: "starting",
      verifyWebhook: "function",
      refused: true,
    });
  }, 180_000);
});
