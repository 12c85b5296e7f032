#!/usr/bin/env node
/**
 * The bundle's entry point (`dist/bundle/edge-signin.mjs`: the `edge-signin` bin, `npm start`, the container).
 * `edge-signin agent`, the command a device runs at every boot, goes straight to the agent's own CommonJS
 * bundle, loaded through the V8 code cache made at build time beside it (src/cli/code-cache.ts; never from STATE_DIR):
 * no command-line parser and no other command's code. Everything else (`--help`, `demo`, `display`, `health`) is
 * the full command line in cli.mjs.
 * Only meaningful inside dist/bundle/, where scripts/bundle.ts puts agent.cjs and cli.mjs beside it.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { AGENT_V8_FLAGS, loadWithCodeCache } from "./cli/code-cache.js";
import type { agentCommand } from "./cli/agent.js";
import { guardAgainstStall } from "./cli/stall-guard.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const args = process.argv.slice(2);

if (args.length === 1 && args[0] === "agent") {
  // Before any code is compiled or the code cache loaded (V8 checks the flags it was made with).
  for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
  const { exports, codeCache } = loadWithCodeCache<{ agentCommand: typeof agentCommand }>(
    join(here, "agent.cjs"),
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
