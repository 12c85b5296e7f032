/**
 * Bundles the agent into `dist/bundle/edge-signin.mjs` (plus chunks that only `demo` loads): the production
 * start path (`npm start`, the container, the `edge-signin` bin). A bundle starts markedly sooner and sits in less memory than the same code
 * loaded module by module from node_modules (see bench/results/latest.md): Node resolves, reads and compiles far
 * fewer files before the first code reaches the display.
 */
import { readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  devDependencies?: Record<string, string>;
};

export const BUNDLE_DIR = "dist/bundle";

export async function bundle(outdir = BUNDLE_DIR): Promise<void> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  // Chunk names carry a content hash: without a clean directory, every rebuild would leave the old chunks
  // behind, and `npm pack` would ship them.
  rmSync(new URL(outdir, `file://${root}`), { recursive: true, force: true });
  await build({
    // Paths relative to the project, whoever calls this (npm, the bench).
    absWorkingDir: root,
    entryPoints: { "edge-signin": "src/main.ts" },
    outdir,
    outExtension: { ".js": ".mjs" },
    // main.ts imports each command lazily; split chunks keep that laziness, so `agent` never loads the demo's
    // identity provider (which would also need the development dependencies).
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    minify: true,
    // Readable stack traces on demand: `node --enable-source-maps dist/edge-signin.mjs`.
    sourcemap: "linked",
    // The demo's broker and identity provider are development dependencies: left out of the bundle, so the
    // bundle's `demo` command works where they are installed.
    external: Object.keys(pkg.devDependencies ?? {}),
    // CommonJS dependencies (MSAL, mqtt, pino) call require() for Node's built-ins; an ES module has none.
    banner: {
      js: 'import { createRequire as __edgeSigninRequire } from "node:module"; const require = __edgeSigninRequire(import.meta.url);',
    },
    legalComments: "linked",
    logLevel: "warning",
  });
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) await bundle();
