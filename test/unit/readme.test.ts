import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { withSettingsTable } from "../../scripts/readme-settings.js";
import { PICTURED_SCREENS } from "../../src/display/screen.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** Prettier pads table cells; compare the cells, not the padding. */
function normaliseTables(markdown: string): string {
  return markdown
    .split("\n")
    .map((line) =>
      line.startsWith("|")
        ? line
            .split("|")
            .map((cell) => (/^\s*-+\s*$/.test(cell) ? "---" : cell.trim()))
            .join("|")
        : line,
    )
    .join("\n")
    .replace(/\n{2,}/g, "\n\n");
}

describe("README", () => {
  it("shows a screenshot of every screen of the web display, and every picture it links is in docs/", () => {
    const pictures = [...readme.matchAll(/\((docs\/[^)\s]+\.png)\)/g)].map((match) => match[1] ?? "");
    const missing = pictures.filter((path) => !existsSync(new URL(`../../${path}`, import.meta.url)));
    expect(missing).toStrictEqual([]);
    expect(
      PICTURED_SCREENS.filter((screen) => !pictures.includes(`docs/screens/${screen}-tv-en.png`)),
    ).toStrictEqual([]);
  });

  it("has the configuration table of src/config/settings.ts (run npm run docs after changing a setting)", () => {
    expect(normaliseTables(readme)).toBe(normaliseTables(withSettingsTable(readme)));
  });

  it("documents every topic the agent publishes", () => {
    for (const topic of [
      "availability",
      "state",
      "display",
      "events/code_issued",
      "events/authenticated",
      "events/code_expired",
      "events/sign_in_failed",
    ]) {
      expect(readme).toContain(`\`{base}/${topic}\``);
    }
  });

  it("gives the two commands of the quick start", () => {
    expect(readme).toContain("npm install && npm run demo");
    expect(readme).toContain("npm test");
  });
});
