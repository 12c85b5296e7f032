import { readFileSync } from "node:fs";
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

/**
 * The parts map is a lint rule (eslint.config.js): each case adds one forbidden import to a real file of a part and
 * expects the lint run to refuse exactly that import, and the file as it is to pass.
 */
const eslint = new ESLint({ cwd: process.cwd() });

async function boundaryErrors(file: string, extraImport = ""): Promise<string[]> {
  const source = extraImport + readFileSync(file, "utf8");
  const [result] = await eslint.lintText(source, { filePath: file });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === "no-restricted-imports")
    .map((m) => `${m.line}: ${m.message}`);
}

const CASES: Array<[file: string, forbidden: string, because: RegExp]> = [
  ["src/auth/authority.ts", 'import "../mqtt/topics.js";\n', /auth knows no broker/],
  ["src/auth/authority.ts", 'import "mqtt";\n', /Only src\/mqtt\//],
  ["src/mqtt/topics.ts", 'import "@azure/msal-node";\n', /Only src\/auth\/ knows MSAL/],
  ["src/mqtt/topics.ts", 'import "../auth/authority.js";\n', /mqtt knows no identity/],
  ["src/display/screen.ts", 'import "../agent.js";\n', /Displays reach the agent only through MQTT/],
  ["src/fleet/fleet.ts", 'import "../auth/authority.js";\n', /only through MQTT/],
  ["src/reporters/log-reporter.ts", 'import "../display/screen.js";\n', /consumes the agent's events/],
  ["src/util/backoff.ts", 'import "../mqtt/topics.js";\n', /Shared plumbing imports no part above it/],
  ["src/agent.ts", 'import "./dev/person.js";\n', /for the CLI only/],
];

describe("the parts map is enforced by the lint run", () => {
  it.each(CASES)("refuses in %s: %s", async (file, forbidden, because) => {
    const errors = await boundaryErrors(file, forbidden);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^1: /);
    expect(errors[0]).toMatch(because);
  });

  it.each([...new Set(CASES.map(([file]) => file))])("passes %s as it is", async (file) => {
    expect(await boundaryErrors(file)).toStrictEqual([]);
  });
});
