import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { END, START } from "../../scripts/readme-settings.js";
import { loadConfig, loadDisplayConfig, loadFleetConfig, sanitiseHostname } from "../../src/config/index.js";
import { configProblems } from "../helpers/config.js";

/**
 * What the README promises, checked against what the code applies: for each row of the README's settings table
 * (parsed from README.md itself, so a hand-edited table or a loader that drifts from it both fail), every loader
 * that reads the variable must give the same configuration with the variable unset as with it set to the
 * default the README states.
 */

type Env = Record<string, string>;
const PREFIX = "EDGE_SIGNIN_";

interface Loader {
  readonly command: string;
  /** The least the command needs to load at all. */
  readonly base: Env;
  readonly load: (env: Env) => unknown;
}

const LOADERS: readonly Loader[] = [
  {
    command: "agent",
    base: { EDGE_SIGNIN_TENANT: "contoso", EDGE_SIGNIN_CLIENT_ID: "client" },
    load: (env) => loadConfig(env),
  },
  { command: "display", base: { EDGE_SIGNIN_DISPLAY_DEVICES: "tv" }, load: (env) => loadDisplayConfig(env) },
  { command: "fleet", base: {}, load: (env) => loadFleetConfig(env) },
];

/**
 * Defaults the README states as a rule rather than a value, and what the rule gives here. The displays and the
 * fleet view name their own MQTT client (`edge-signin-display-...`): the README's `MQTT_CLIENT_ID` default is the
 * agent's.
 */
const device = sanitiseHostname(hostname());
const RULES: Readonly<Record<string, string>> = {
  hostname: device,
  "edge-signin-{DEVICE_ID}": `edge-signin-${device}`,
};
const AGENT_ONLY_DEFAULTS = new Set(["MQTT_CLIENT_ID"]);

interface Row {
  readonly name: string;
  readonly stated: string;
}

/** The rows of the README's settings table: the variable (without prefix) and the default it states. */
function readmeRows(): Row[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const table = readme.slice(readme.indexOf(START) + START.length, readme.indexOf(END));
  return table
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => {
      const [, names = "", stated = ""] = line.split("|");
      const name = /`EDGE_SIGNIN_([A-Z0-9_]+)`/.exec(names)?.[1];
      if (!name) throw new Error(`a settings row names no variable: ${line.slice(0, 80)}`);
      return { name, stated: stated.trim().replace(/^`(.*)`$/, "$1") };
    });
}

/** The loaders that read the variable: a control character in it is refused, naming it. */
function readersOf(name: string): Loader[] {
  return LOADERS.filter(({ base, load }) =>
    configProblems(() => load({ ...base, [PREFIX + name]: "\u0001x" })).some(
      (problem) => problem.startsWith(`${PREFIX}${name}:`) || problem.startsWith(`${PREFIX}${name}_FILE:`),
    ),
  );
}

const rows = readmeRows();

describe("the README's settings table", () => {
  it("is found and parsed: a row per setting", () => {
    expect(rows.length).toBeGreaterThan(40);
    expect(rows.map((row) => row.name)).toContain("HTTP_TIMEOUT_SECONDS");
  });

  it.each(rows)("$name: read by some command, whose default is what the README states ($stated)", (row) => {
    const readers = readersOf(row.name);
    expect(readers, `no command reads ${PREFIX}${row.name}`).not.toStrictEqual([]);
    if (row.stated === "") return;
    const value = RULES[row.stated] ?? row.stated;
    for (const { command, base, load } of readers) {
      if (command !== "agent" && AGENT_ONLY_DEFAULTS.has(row.name)) continue;
      const unset = { ...base };
      delete unset[PREFIX + row.name];
      expect(load(unset), `${command}: ${PREFIX}${row.name} unset vs set to ${value}`).toStrictEqual(
        load({ ...base, [PREFIX + row.name]: value }),
      );
    }
  });
});
