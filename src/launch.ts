#!/usr/bin/env node
/**
 * The bundle's entry point (`dist/bundle/edge-signin.mjs`: the `edge-signin` bin, `npm start`, the container).
 * `edge-signin agent`, the command a device runs at every boot, goes straight to the agent's own CommonJS
 * bundle, loaded through a V8 code cache kept in STATE_DIR (src/code-cache.ts): no command-line parser, no
 * other command's code, and no parsing or compiling of what the last start already compiled. Everything else
 * (`--help`, `demo`, `display`, `health`) is the full command line in cli.mjs.
 * Only meaningful inside dist/bundle/, where scripts/bundle.ts puts agent.cjs and cli.mjs beside it.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { loadWithCodeCache } from "./code-cache.js";
import type { agentCommand } from "./commands/agent.js";
import { guardAgainstStall } from "./stall-guard.js";
import { CODE_CACHE_FILE, configuredStateDir } from "./state-dir.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const args = process.argv.slice(2);

if (args.length === 1 && args[0] === "agent") {
  // undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it twice: quickly (Liftoff), then again
  // optimised (TurboFan) on a worker thread, whose ~10 MiB of compiler memory stays in that thread's malloc arena
  // for the life of the process. The agent parses a few small responses a minute; the quick code is plenty.
  // Set before any WebAssembly is compiled, and before the code cache is loaded (V8 checks the flags it was made with).
  setFlagsFromString("--liftoff-only");
  const { exports, codeCache } = loadWithCodeCache<{ agentCommand: typeof agentCommand }>(
    join(here, "agent.cjs"),
    join(configuredStateDir(), CODE_CACHE_FILE),
  );
  const disarm = guardAgainstStall();
  process.exitCode = await exports.agentCommand({ codeCache });
  disarm();
  // MSAL's polling timer may still be pending after a cancel; the work is done, so leave now (as cli.mjs does).
  process.exit();
} else {
  // A computed specifier keeps esbuild from bundling the CLI into this file.
  const cli = "./cli.mjs";
  await import(cli);
}
