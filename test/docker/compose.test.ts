import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { renderEnvExample } from "../../scripts/env-example.js";
import { ENV_PREFIX, SETTINGS } from "../../src/config/index.js";
import { REPO } from "./compose-broker.js";

/** compose.yaml and its companions, checked without a container engine. */
const COMPOSE_PATH = join(REPO, "compose.yaml");
const composeText = readFileSync(COMPOSE_PATH, "utf8");

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  env_file?: string;
  environment?: Record<string, string>;
  secrets?: Array<string | { source: string; target?: string }>;
  volumes?: string[];
  profiles?: string[];
  ports?: string[];
  restart?: string;
  read_only?: boolean;
  init?: boolean;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
}
interface Compose {
  services: Record<"mosquitto" | "agent" | "display" | "app", Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}
const compose = parse(composeText, { merge: true }) as Compose;

/** dclint's own type declarations do not resolve under NodeNext (extensionless imports): the part used here. */
interface LintMessage {
  readonly rule: string;
  readonly message: string;
}
type Linter = new (config: {
  rules: Record<string, 0 | 1 | 2 | [0 | 1 | 2, Record<string, unknown>]>;
  quiet: boolean;
  debug: boolean;
  exclude: string[];
}) => { lintFiles(paths: string[], recursive: boolean): Array<{ messages: LintMessage[] }> };
const { DCLinter } = createRequire(import.meta.url)("dclint") as { DCLinter: Linter };

/** The Compose Specification's JSON schema, as dclint ships it (the registry holds no other copy). */
function composeSchema(): object {
  const dclint = dirname(createRequire(import.meta.url).resolve("dclint/package.json"));
  const schema = JSON.parse(readFileSync(join(dclint, "schemas/compose.schema.json"), "utf8")) as {
    $schema?: string;
  };
  // It names draft-07 by an https URL that ajv does not know; ajv's default dialect is draft-07 anyway.
  delete schema.$schema;
  return schema;
}

function validateCompose(document: unknown): string[] {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(composeSchema());
  if (validate(document)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`);
}

const secretTargets = (service: Service) =>
  new Map(
    (service.secrets ?? []).map((s) =>
      typeof s === "string" ? [s, `/run/secrets/${s}`] : [s.source, s.target ?? `/run/secrets/${s.source}`],
    ),
  );

describe("compose.yaml", () => {
  it("follows the Compose Specification (JSON schema)", () => {
    expect(validateCompose(compose)).toStrictEqual([]);
  });

  it("fails that schema check when a key is wrong (the check can fail)", () => {
    const broken = structuredClone(compose) as unknown as { services: { agent: Record<string, unknown> } };
    broken.services.agent["restart_policy"] = "always";
    expect(validateCompose(broken)).toStrictEqual(["/services/agent must NOT have additional properties"]);
  });

  it("passes dclint's rules", () => {
    const linter = new DCLinter({
      rules: {
        // Prettier formats YAML here and writes double quotes.
        "require-quotes-in-ports": [1, { quoteType: "double" }],
        // The file reads in the order things start: broker, agent, display.
        "services-alphabetical-order": 0,
        "service-keys-order": 0,
        "service-dependencies-alphabetical-order": 0,
        // Compose v1 (docker-compose 1.29) rejects a top-level `name:`; .env.example names the project
        // (COMPOSE_PROJECT_NAME), checked below.
        "require-project-name-field": 0,
        // It cannot see an interface behind interpolation (`${DISPLAY_ADDRESS:-0.0.0.0}:...`); the test
        // "publishes every port on a named interface" below checks what it would.
        "no-unbound-port-interfaces": 0,
      },
      quiet: false,
      debug: false,
      exclude: [],
    });
    const [result] = linter.lintFiles([COMPOSE_PATH], false);
    expect(result?.messages.map((m) => `${m.rule}: ${m.message}`)).toStrictEqual([]);
  });

  it("runs a broker that refuses anonymous clients and enforces the ACL from docker/mosquitto", () => {
    const broker = compose.services.mosquitto;
    expect(broker.image).toBe("eclipse-mosquitto:2");
    expect(broker.volumes).toStrictEqual([
      "./docker/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro",
      "./docker/mosquitto/acl:/mosquitto/config/acl:ro",
      "mosquitto_data:/mosquitto/data",
    ]);
    const conf = readFileSync(join(REPO, "docker/mosquitto/mosquitto.conf"), "utf8");
    expect(conf).toMatch(/^allow_anonymous false$/m);
    expect(conf).toMatch(/^acl_file \/mosquitto\/config\/acl$/m);
    expect(conf).toMatch(/^persistence true$/m);
    expect(conf).toMatch(/^persistence_location \/mosquitto\/data\/$/m);
    const passwordFile = /^password_file (\S+)$/m.exec(conf)?.[1];
    expect(secretTargets(broker).get("mosquitto_passwd")).toBe(passwordFile);
    expect(broker.healthcheck?.test?.[0]).toBe("CMD-SHELL");
  });

  it("runs the agent with its secrets as files, a state volume, a read-only root and a healthy broker first", () => {
    const agent = compose.services.agent;
    expect(agent.build).toStrictEqual({ context: ".", dockerfile: "docker/Dockerfile" });
    expect(existsSync(join(REPO, agent.build?.dockerfile ?? ""))).toBe(true);
    expect(agent).toMatchObject({
      env_file: ".env",
      restart: "unless-stopped",
      read_only: true,
      init: true,
      depends_on: { mosquitto: { condition: "service_healthy" } },
    });
    expect(agent.volumes).toStrictEqual([
      `agent_state:${agent.environment?.["EDGE_SIGNIN_STATE_DIR"]}`,
      "agent_run:/run/edge-signin",
    ]);
    expect(agent.environment?.["EDGE_SIGNIN_MQTT_USERNAME"]).toMatch(/^\$\{EDGE_SIGNIN_DEVICE_ID[^}]*\}$/);
  });

  it("shows an app container that shares only the token socket's directory, never STATE_DIR, off by default", () => {
    const app = compose.services.app;
    expect(app).toMatchObject({ profiles: ["apps"], image: compose.services.agent.image, read_only: true });
    expect(app.volumes).toStrictEqual(["agent_run:/run/edge-signin:ro"]);
    expect(app.environment).toBeUndefined();
  });

  it("runs the web display as the same image with read-only broker credentials", () => {
    const display = compose.services.display;
    expect(display.image).toBe(compose.services.agent.image);
    expect(display.command).toStrictEqual(["node", "dist/bundle/edge-signin.mjs", "display", "--web"]);
    expect(display.environment).toMatchObject({
      EDGE_SIGNIN_DISPLAY_HOST: "0.0.0.0",
      EDGE_SIGNIN_DISPLAY_PORT: "8080",
      EDGE_SIGNIN_MQTT_USERNAME: "edge-signin/${EDGE_SIGNIN_DEVICE_ID}",
    });
    expect(display.ports).toStrictEqual(["${DISPLAY_ADDRESS:-0.0.0.0}:${DISPLAY_PORT:-8080}:8080"]);
  });

  it("publishes every port on a named interface: the broker on loopback, the display where DISPLAY_ADDRESS says", () => {
    const published = Object.entries(compose.services).flatMap(([name, service]) =>
      (service.ports ?? []).map((port) => `${name} ${port}`),
    );
    expect(published).toStrictEqual([
      "mosquitto 127.0.0.1:${MQTT_PORT:-1883}:1883",
      "display ${DISPLAY_ADDRESS:-0.0.0.0}:${DISPLAY_PORT:-8080}:8080",
    ]);
  });

  it("runs with Compose v1 as well: no top-level `name:`, the project named in .env.example", () => {
    expect(Object.keys(compose)).not.toContain("name");
    const example = readFileSync(join(REPO, ".env.example"), "utf8");
    expect(example).toMatch(/^COMPOSE_PROJECT_NAME=edge-signin$/m);
  });

  it("passes every secret as a *_FILE variable naming a mounted compose secret, never as a value", () => {
    const secretName = /PASSWORD|SECRET|KEY|TOKEN/;
    for (const [name, service] of Object.entries(compose.services)) {
      const mounted = new Set(secretTargets(service).values());
      for (const [variable, value] of Object.entries(service.environment ?? {})) {
        if (!secretName.test(variable)) continue;
        expect(variable, `${name}: ${variable}`).toMatch(/_FILE$/);
        expect(mounted, `${name}: ${variable}=${value} is not a mounted secret`).toContain(value);
      }
    }
    // Every secret file is made by the users script.
    const script = readFileSync(join(REPO, "docker/create-broker-users.sh"), "utf8");
    for (const { file } of Object.values(compose.secrets)) {
      // Shared files, or one device's (each device its own passwords).
      expect(file).toMatch(/^\.\/docker\/secrets\/(\$\{EDGE_SIGNIN_DEVICE_ID\}\/)?\w+$/);
      expect(script).toContain(file.replace(/^\.\/docker\/secrets\/(\$\{EDGE_SIGNIN_DEVICE_ID\}\/)?/, ""));
    }
    const gitignore = readFileSync(join(REPO, ".gitignore"), "utf8").split("\n");
    expect(gitignore).toContain(".env");
    expect(gitignore).toContain("docker/secrets/");
  });
});

describe(".env.example", () => {
  const text = readFileSync(join(REPO, ".env.example"), "utf8");

  it("is generated from the settings (npm run docs) and names every variable", () => {
    expect(text).toBe(renderEnvExample());
    for (const setting of SETTINGS) expect(text).toContain(`${ENV_PREFIX}${setting.name}=`);
  });

  it("names a device, and the ACL names none: its patterns cover every device", () => {
    expect(text).toMatch(/^EDGE_SIGNIN_DEVICE_ID=[A-Za-z0-9][\w-]*$/m);
    const acl = readFileSync(join(REPO, "docker/mosquitto/acl"), "utf8");
    const users = [...acl.matchAll(/^user (\S+)$/gm)].map((m) => m[1]);
    expect(users).toStrictEqual(["events", "controller", "fleet"]);
  });
});
