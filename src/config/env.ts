import { createPrivateKey, X509Certificate } from "node:crypto";
import type * as z from "zod/mini";
import { readBoundedFileSync, type StateFileRead } from "../storage/state-file.js";
import { ENV_PREFIX, type SecondsSetting, type Setting } from "./setting.js";
import { SETTINGS } from "./settings.js";

export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration problem, reported as one line: `EDGE_SIGNIN_X: what is expected`. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(problems.join("; "));
  }
}

/** C0 and C1 control characters: no setting needs one, and they forge log lines and break topics and headers. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
/** Largest file a setting may name (a password, a key, a PEM bundle of CAs): far above any, far below memory. */
const MAX_SETTING_FILE_BYTES = 1024 * 1024;

/**
 * Reads settings through their declarations (settings.ts), collecting every problem instead of stopping at the
 * first, so one run shows them all.
 */
export class EnvReader {
  private readonly problems: string[] = [];

  constructor(readonly env: Env) {}

  problem(text: string): void {
    this.problems.push(text);
  }

  /** The variable's text exactly as set, unchecked; undefined when unset. */
  raw(setting: Setting): string | undefined {
    return this.env[ENV_PREFIX + setting.name];
  }

  /** The variable's text; undefined when unset, empty, or holding a control character (then a problem). */
  private value(name: string): string | undefined {
    const raw = this.env[ENV_PREFIX + name];
    if (raw === undefined || raw === "") return undefined;
    if (CONTROL_CHARACTER.test(raw)) {
      this.problems.push(`${ENV_PREFIX}${name}: contains a control character (newline, tab, escape, ...)`);
      return undefined;
    }
    return raw;
  }

  private parse<T>(name: string, schema: z.ZodMiniType<T>, raw: string): T | undefined {
    const result = schema.safeParse(raw);
    if (result.success) return result.data;
    this.problems.push(`${ENV_PREFIX}${name}: ${result.error.issues[0]?.message ?? "invalid value"}`);
    return undefined;
  }

  /** The setting's value; its default when unset, empty or invalid (then a problem). */
  get<T, D extends T | undefined = undefined>(setting: Setting<T> & { readonly default?: D }): T | D {
    const raw = this.value(setting.name);
    const value = raw === undefined ? undefined : this.parse(setting.name, setting.schema, raw);
    return value === undefined ? (setting.default as D) : value;
  }

  /** A setting in seconds, in milliseconds. */
  ms(setting: SecondsSetting): number {
    return this.get(setting) * 1000;
  }

  required<T>(setting: Setting<T>): T | undefined {
    const value = this.get(setting);
    const raw = this.raw(setting);
    if (value === undefined && (raw === undefined || raw === ""))
      this.problems.push(`${ENV_PREFIX}${setting.name}: is required`);
    return value;
  }

  /** A secret comes from `NAME` or from the file named by `NAME_FILE` (Docker secrets), never both. */
  secret(setting: Setting<string>): string | undefined {
    const name = setting.name;
    const direct = this.value(name);
    const file = this.value(`${name}_FILE`);
    if (direct && file) {
      this.problems.push(
        `${ENV_PREFIX}${name}: set either ${ENV_PREFIX}${name} or ${ENV_PREFIX}${name}_FILE, not both`,
      );
      return undefined;
    }
    if (file) return this.readFile(`${name}_FILE`, file)?.replace(/\r?\n$/, "");
    return direct;
  }

  /**
   * A PEM file of certificates (CA, client certificate) or a private key, read and parsed now: a wrong path, a
   * file with no PEM in it, or a damaged one is a one-line configuration error, not a TLS library's message
   * (or a reconnect loop) later.
   */
  pemFile(setting: Setting<string>, kind: "certificates" | "key"): string | undefined {
    const name = setting.name;
    const path = this.value(name);
    if (!path) return undefined;
    const text = this.readFile(name, path);
    if (text === undefined) return undefined;
    const blocks = text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
    const problem =
      blocks.length === 0
        ? "holds no PEM block (-----BEGIN ...-----)"
        : kind === "key"
          ? unusable(() => createPrivateKey(text), "holds no usable unencrypted private key")
          : unusable(() => {
              const certificates = blocks.filter((block) => block.startsWith("-----BEGIN CERTIFICATE-----"));
              if (certificates.length === 0) throw new Error("no certificate");
              for (const block of certificates) new X509Certificate(block);
            }, "holds no usable PEM certificate");
    if (problem) {
      this.problems.push(`${ENV_PREFIX}${name}: ${path} ${problem}`);
      return undefined;
    }
    return text;
  }

  /**
   * A file a setting names (a secret, a PEM file): like a state file, a regular file of bounded size read without
   * blocking, so `/dev/zero`, a FIFO or a huge file is one problem line instead of a start that eats memory or hangs.
   */
  private readFile(name: string, path: string): string | undefined {
    const read = readBoundedFileSync(path, MAX_SETTING_FILE_BYTES);
    if (read.status === "ok") return read.data.toString("utf8");
    this.problems.push(`${ENV_PREFIX}${name}: cannot read file ${path} (${settingFileProblem(read)})`);
    return undefined;
  }

  /**
   * The configuration read, frozen to the last level.
   * @throws ConfigError naming every variable that is wrong and what it expects.
   */
  finish<T extends object>(config: T): T {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return deepFreeze(config);
  }
}

/**
 * Why a file a setting names could not be used, in the words the file system would use where it has one (ENOENT,
 * EISDIR, EACCES), else the state-file reader's (a FIFO or device, a size over the limit).
 */
export function settingFileProblem(read: Exclude<StateFileRead, { status: "ok" }>): string {
  if (read.status === "missing") return "ENOENT";
  if (read.problem === "a directory, not a file") return "EISDIR";
  return /^unreadable \((.+)\)$/.exec(read.problem)?.[1] ?? read.problem;
}

/** `problem` when `parse` throws, else undefined. */
function unusable(parse: () => unknown, problem: string): string | undefined {
  try {
    parse();
    return undefined;
  } catch {
    return problem;
  }
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === "object" && !Object.isFrozen(child)) deepFreeze(child as object);
  }
  return Object.freeze(value);
}

/**
 * The `EDGE_SIGNIN_*` variables in `env` that are no setting (a misspelt `EDGE_SIGNIN_MQTT_URI`, one from another
 * version), sorted; each is ignored, so the caller warns once, naming them. Variables of the provisioning script
 * (`SECRETS_DIR`, `ACL_FILE`) and of the tests (`TEST_*`) are not counted: a shared `.env` may hold them.
 */
export function unknownSettings(env: Env): string[] {
  const known = new Set(SETTINGS.flatMap((s) => [s.name, ...(s.fileVariant ? [`${s.name}_FILE`] : [])]));
  for (const other of ["SECRETS_DIR", "ACL_FILE"]) known.add(other);
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX))
    .map((name) => name.slice(ENV_PREFIX.length))
    .filter((name) => !known.has(name) && !name.startsWith("TEST_"))
    .map((name) => `${ENV_PREFIX}${name}`)
    .sort();
}

/** One line for unknownSettings(), or undefined when there are none. */
export function unknownSettingsWarning(env: Env): string | undefined {
  const unknown = unknownSettings(env);
  if (unknown.length === 0) return undefined;
  return `ignored ${unknown.length === 1 ? "a variable that is no setting" : `${unknown.length} variables that are no setting`}: ${unknown.join(", ")} (misspelt? the settings are listed in README.md, Configuration, and by edge-signin agent --help)`;
}
