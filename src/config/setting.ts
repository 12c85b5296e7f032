import type * as z from "zod/mini";
import { seconds } from "./rules.js";

/** Every setting is an environment variable with this prefix: the compose-friendly way. */
export const ENV_PREFIX = "EDGE_SIGNIN_";

/**
 * One setting, declared once (settings.ts): the loaders read it through this entry, and the README's table,
 * `.env.example` and `agent --help` show its default and text from it, so what is documented is what applies.
 */
export interface Setting<T = unknown> {
  /** The variable's name without {@link ENV_PREFIX}. */
  readonly name: string;
  /** Checks the variable's text and turns it into the value the code uses. */
  readonly schema: z.ZodMiniType<T>;
  /** What applies when the variable is unset or empty; none: the setting is optional (or required). */
  readonly default?: T;
  /**
   * The default when the code works it out at start (`hostname`, from another setting): documented in words,
   * applied by the loader.
   */
  readonly defaultRule?: string;
  /** What a number counts; `seconds` settings are read into milliseconds with `EnvReader.ms`. */
  readonly unit?: "seconds";
  /** What it does: the README's and `.env.example`'s text. */
  readonly description: string;
  /** Also read from the file `NAME_FILE` names (Docker secrets). */
  readonly fileVariant?: boolean;
}

/** A number of seconds with a default: the only kind `EnvReader.ms` reads. */
export type SecondsSetting = Setting<number> & { readonly unit: "seconds"; readonly default: number };

/** A setting's schema, default and unit for a number of seconds from `min` to `max`. */
export function inSeconds(min: number, max: number, defaultSeconds: number) {
  return { schema: seconds(min, max), default: defaultSeconds, unit: "seconds" as const };
}

type Declaration = Omit<Setting, "name">;
/** The declarations with their names, each keeping its own value and default types. */
type Declared<M> = {
  readonly [K in keyof M & string]: M[K] & { readonly name: K };
};

/**
 * Names each declaration after its key, and checks at compile time that each default is a value of its schema.
 * The keys' order is the documentation's.
 */
export function declare<const M extends Record<string, Declaration>>(
  declarations: M & { readonly [K in keyof M]: { readonly default?: z.output<M[K]["schema"]> } },
): Declared<M> {
  return Object.fromEntries(
    Object.entries(declarations).map(([name, declaration]) => [
      name,
      Object.freeze({ ...declaration, name }),
    ]),
  ) as Declared<M>;
}

/** A setting as the README's table, `.env.example` and `agent --help` list it. */
export interface SettingDoc {
  readonly name: string;
  readonly default: string;
  readonly description: string;
  /** Has a `_FILE` variant that reads the value from a file (Docker secrets). */
  readonly fileVariant?: boolean;
}

/** The default as documented: the rule in words, or the value as it is written in the variable. */
export function documentedDefault(setting: Setting): string {
  const value = setting.default;
  if (setting.defaultRule !== undefined) return setting.defaultRule;
  if (value === undefined) return "";
  if (Array.isArray(value)) return value.join(" ");
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
    return String(value);
  throw new Error(`${setting.name}: a default the documentation cannot show as text; give it a defaultRule`);
}

export function settingDoc(setting: Setting): SettingDoc {
  return {
    name: setting.name,
    default: documentedDefault(setting),
    description: setting.description,
    ...(setting.fileVariant ? { fileVariant: true } : {}),
  };
}
