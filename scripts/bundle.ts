/**
 * Builds the production start path (`npm start`, the container, the `edge-signin` bin) into `dist/bundle/`:
 * - `edge-signin.mjs`: the entry point (src/launch.ts). `agent` goes straight to agent.cjs; anything else to cli.mjs.
 * - `agent.cjs`: the agent alone, one CommonJS file, with a slim undici (scripts/undici-slim.mjs), and
 *   `agent.cjs.cache`, its V8 code cache made here for exactly this bundle (src/cli/code-cache.ts).
 * - `cli.mjs` + `chunks/`: the whole command line (help, demo, display, health), commands in lazy chunks.
 * A bundle starts markedly sooner and sits in less memory than the same code loaded module by module from
 * node_modules (bench/results/latest.md): Node resolves, reads and compiles far fewer files before the first
 * code reaches the display.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type BuildOptions, type Plugin } from "esbuild";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  devDependencies?: Record<string, string>;
};

export const BUNDLE_DIR = "dist/bundle";

export async function bundle(outdir = BUNDLE_DIR): Promise<void> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  // Chunk names carry a content hash: without a clean directory, every rebuild would leave the old chunks
  // behind, and `npm pack` would ship them.
  rmSync(new URL(outdir, `file://${root}`), { recursive: true, force: true });
  const common: BuildOptions = {
    // Paths relative to the project, whoever calls this (npm, the bench).
    absWorkingDir: root,
    bundle: true,
    platform: "node",
    target: "node20",
    minify: true,
    // Readable stack traces on demand: `node --enable-source-maps dist/bundle/edge-signin.mjs`.
    sourcemap: "linked",
    // The demo's broker and identity provider are development dependencies: left out of the bundle, so the
    // bundle's `demo` command works where they are installed.
    external: Object.keys(pkg.devDependencies ?? {}),
    legalComments: "linked",
    logLevel: "warning",
  };
  // CommonJS dependencies (MSAL, mqtt, pino) call require() for Node's built-ins; an ES module has none.
  const esmRequire =
    'import { createRequire as __edgeSigninRequire } from "node:module"; const require = __edgeSigninRequire(import.meta.url);';
  await Promise.all([
    build({
      ...common,
      entryPoints: { "edge-signin": "src/launch.ts" },
      outdir,
      outExtension: { ".js": ".mjs" },
      format: "esm",
      banner: { js: esmRequire },
    }),
    build({
      ...common,
      entryPoints: { agent: "src/cli/agent.ts" },
      outdir,
      outExtension: { ".js": ".cjs" },
      format: "cjs",
      plugins: [slimUndici(root)],
      // The few `import.meta.url` lookups (package.json for the version) work from the bundle's own path.
      define: { "import.meta.url": "__edgeSigninModuleUrl" },
      banner: { js: 'var __edgeSigninModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
    }),
    build({
      ...common,
      entryPoints: { cli: "src/main.ts" },
      outdir,
      outExtension: { ".js": ".mjs" },
      // main.ts imports each command lazily; split chunks keep that laziness, so `display` never loads the
      // demo's identity provider (which would also need the development dependencies).
      splitting: true,
      chunkNames: "chunks/[name]-[hash]",
      format: "esm",
      banner: { js: esmRequire },
    }),
  ]);
  verifySlimUndici(root);
  makeCodeCache(root, join(outdir, "agent.cjs"));
}

/**
 * The agent bundle's V8 code cache, made now and shipped beside it (scripts/make-code-cache.ts): the agent reads
 * compiled code only from there, never from STATE_DIR, where whoever can write the directory could plant some.
 */
export function makeCodeCache(root: string, bundleFile: string): void {
  execFileSync(
    process.execPath,
    ["--import", "tsx", join(root, "scripts", "make-code-cache.ts"), resolve(root, bundleFile)],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
}

/**
 * Fails the build when the slim undici (scripts/undici-slim.mjs) leaves dispatchers without a method that
 * undici's own index gives them. Dispatchers call each other's methods (the proxy agent tunnels through
 * `connect()`), so a method the agent never calls by name can still be one it needs. Each side is loaded in a
 * fresh Node process, as the two entry points never share a process.
 */
export function verifySlimUndici(root: string): void {
  const methods = (load: string): string[] => {
    const script = `${load}.then((Dispatcher) => console.log(JSON.stringify(Object.getOwnPropertyNames((Dispatcher.default ?? Dispatcher).prototype))))`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
      encoding: "utf8",
    });
    return JSON.parse(out) as string[];
  };
  const dispatcher = JSON.stringify(join(root, "node_modules/undici/lib/dispatcher/dispatcher.js"));
  const full = methods(`import("undici").then(() => import(${dispatcher}))`);
  const slim = methods(
    `import(${JSON.stringify(join(root, "scripts", "undici-slim.mjs"))}).then(() => import(${dispatcher}))`,
  );
  const missing = full.filter((name) => !slim.includes(name));
  if (missing.length > 0) {
    throw new Error(
      `scripts/undici-slim.mjs leaves Dispatcher.prototype without ${missing.join(", ")}, which undici's index ` +
        "attaches: the agent's bundle would fail wherever a dispatcher calls them (an HTTPS proxy calls connect()).",
    );
  }
}

/** `import ... from "undici"` (exactly; not its subpaths) resolves to scripts/undici-slim.mjs. */
function slimUndici(root: string): Plugin {
  return {
    name: "slim-undici",
    setup(build) {
      build.onResolve({ filter: /^undici$/ }, () => ({ path: join(root, "scripts", "undici-slim.mjs") }));
    },
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) await bundle();
