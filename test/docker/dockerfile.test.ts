import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";
import { REPO } from "./compose-broker.js";

/** docker/Dockerfile, checked without a container engine: parsed, linted, and held to the deployment rules. */
const content = readFileSync(join(REPO, "docker/Dockerfile"), "utf8");
const dockerfile = DockerfileParser.parse(content);
const instructions = dockerfile.getInstructions();
const froms = dockerfile.getFROMs();
const lastFromLine = froms.at(-1)?.getRange().start.line ?? -1;
/** The runtime stage: what ships. */
const final = instructions.filter((i) => i.getRange().start.line >= lastFromLine);
const keyword = (name: string) => (i: Instruction) => i.getKeyword() === name;
const lines = content.split("\n");
/** The instruction's arguments as written, flags included, continuation lines joined. */
const args = (i: Instruction) => {
  const { start, end } = i.getRange();
  const text = lines
    .slice(start.line, end.line + 1)
    .map((line) => line.replace(/\\$/, "").trim())
    .join(" ");
  return text.slice(i.getKeyword().length).trim().replace(/\s+/g, " ");
};

/** ARG defaults declared before the first FROM, which FROM lines may use. */
function initialArgs(): Map<string, string> {
  const values = new Map<string, string>();
  for (const arg of dockerfile.getInitialARGs()) {
    for (const property of arg.getProperties()) values.set(property.getName(), property.getValue() ?? "");
  }
  return values;
}

/** The JSON (exec form) arguments of an instruction, or undefined in shell form. */
function execForm(instruction: Instruction | undefined): string[] | undefined {
  const text = instruction ? args(instruction).replace(/^(--\S+\s+)*(CMD\s+)?/, "") : "";
  if (!text.startsWith("[")) return undefined;
  return JSON.parse(text) as string[];
}

describe("docker/Dockerfile", () => {
  it("has no problems dockerfile-utils reports", () => {
    const problems = validate(content).map(
      (d) => `line ${d.range.start.line + 1}: ${typeof d.message === "string" ? d.message : d.message.value}`,
    );
    expect(problems).toStrictEqual([]);
  });

  it("is multi-stage: a build stage makes the bundle, the runtime stage holds it, package.json and README only", () => {
    expect(froms.map((f) => f.getBuildStage())).toStrictEqual(["build", "runtime"]);
    const build = instructions.filter(
      (i) =>
        i.getRange().start.line >= (froms[0]?.getRange().start.line ?? 0) &&
        i.getRange().start.line < lastFromLine,
    );
    const buildRuns = build.filter(keyword("RUN")).map(args).join("\n");
    expect(buildRuns).toMatch(/npm ci /);
    expect(buildRuns).toMatch(/npm run build/);
    // The bundle carries every production dependency: the runtime stage installs nothing and runs no npm.
    expect(final.filter(keyword("RUN")).map(args).join("\n")).not.toMatch(/\bnpm\b|node_modules/);
    expect(final.filter(keyword("COPY")).map(args)).toStrictEqual([
      "package.json README.md ./",
      "--from=build /src/dist/bundle ./dist/bundle",
    ]);
    expect(final.filter(keyword("ADD"))).toStrictEqual([]);
  });

  it("starts from an official Node image pinned to a major version (and one that ships linux/arm/v7)", () => {
    const defaults = initialArgs();
    for (const from of froms) {
      const image = (from.getImage() ?? "").replace(
        /^\$\{(\w+)\}$/,
        (_, name: string) => defaults.get(name) ?? "",
      );
      expect(image).toMatch(/^node:\d+(\.\d+)*-[a-z0-9.-]+$/);
      expect(image).not.toMatch(/:latest|:lts|:current/);
    }
    expect(defaults.get("NODE_IMAGE")).toBe("node:22-bookworm-slim");
  });

  it("runs as a non-root user", () => {
    const users = final.filter(keyword("USER")).map(args);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  it("checks its health with node alone and starts the agent in exec form (so SIGTERM reaches node)", () => {
    const healthchecks = final.filter(keyword("HEALTHCHECK"));
    expect(healthchecks).toHaveLength(1);
    expect(execForm(healthchecks[0])).toStrictEqual(["node", "dist/bundle/edge-signin.mjs", "health"]);
    const cmds = final.filter(keyword("CMD"));
    expect(cmds).toHaveLength(1);
    expect(execForm(cmds[0])?.[0]).toBe("node");
    // One entry point for both: the bundle, which is also the package's bin (test/docker/package.test.ts runs
    // `agent` and `health` through that bin).
    const { bin } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(execForm(cmds[0])?.[1]).toBe(execForm(healthchecks[0])?.[1]);
    expect(join(execForm(cmds[0])?.[1] ?? "")).toBe(join(bin["edge-signin"] ?? ""));
    expect(final.filter(keyword("STOPSIGNAL")).map(args)).toStrictEqual(["SIGTERM"]);
  });

  it("puts no secret into ENV, ARG or LABEL", () => {
    const secretName = /PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL/i;
    for (const instruction of [...dockerfile.getENVs(), ...dockerfile.getARGs()]) {
      for (const property of instruction.getProperties()) {
        if (secretName.test(property.getName())) {
          expect(property.getValue() ?? "", `${property.getName()} has a value`).toBe("");
        }
      }
    }
  });

  it("declares STATE_DIR as its one volume and carries OCI labels", () => {
    const env = final.filter(keyword("ENV")).map(args).join(" ");
    expect(env).toContain("EDGE_SIGNIN_STATE_DIR=/var/lib/edge-signin");
    expect(final.filter(keyword("VOLUME")).map(args)).toStrictEqual(['["/var/lib/edge-signin"]']);
    const labels = final.filter(keyword("LABEL")).map(args).join(" ");
    for (const label of ["title", "description", "version", "revision", "licenses"]) {
      expect(labels).toContain(`org.opencontainers.image.${label}=`);
    }
  });

  it("copies only files that exist and that .dockerignore lets into the build context", () => {
    const allowed = readFileSync(join(REPO, ".dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("!"))
      .map((line) => line.slice(1).replace(/\/$/, ""));
    expect(readFileSync(join(REPO, ".dockerignore"), "utf8")).toMatch(/^\*$/m);
    const sources = dockerfile
      .getCOPYs()
      .filter((copy) => !args(copy).startsWith("--from="))
      .flatMap((copy) => args(copy).split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      const path = source.replace(/^\.\//, "").replace(/\/$/, "");
      expect(allowed, `${source} is excluded by .dockerignore`).toContain(path);
      expect(existsSync(join(REPO, path)), `${source} does not exist`).toBe(true);
    }
    // Secrets never enter the build context.
    for (const secret of [".env", "docker/secrets"]) expect(allowed).not.toContain(secret);
  });
});
