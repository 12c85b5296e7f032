import { readFileSync } from "node:fs";

/** The package's version, read from package.json above src/ (tsx), dist/src/ or dist/bundle/ (compiled, bundled) or dist/bundle/chunks/. */
export function packageVersion(): string {
  for (const path of ["../package.json", "../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "edge-signin" && pkg.version) return pkg.version;
    } catch {
      // Try the next candidate: the layout differs between src/ and dist/src/.
    }
  }
  return "0.0.0";
}
