/**
 * The process whose V8 code becomes the agent bundle's code cache (forked by scripts/make-code-cache.ts). The
 * agent's V8 flags are set first thing, before anything is compiled: V8 takes a cache only under its own flags.
 * `setup`: the bundle's module set-up only. `train`: then the agent itself runs, against the development identity
 * provider and broker that the parent started (its environment says where), until the parent, having seen the
 * code on the display and the sign-in, asks for the cache; so the functions a real start runs first (start-up to
 * the first code, the approval path) are compiled ahead of time too. Nothing of the run is kept but V8's code.
 *
 *   node --import tsx scripts/code-cache-run.ts setup|train BUNDLE_FILE
 */
import { setFlagsFromString } from "node:v8";
import type { agentCommand } from "../src/cli/agent.js";
import { AGENT_V8_FLAGS, loadForCodeCache } from "../src/cli/code-cache.js";

const [mode, bundleFile] = process.argv.slice(2);
if (!bundleFile || (mode !== "setup" && mode !== "train"))
  throw new Error("usage: code-cache-run.ts setup|train BUNDLE_FILE");
for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
const bundle = loadForCodeCache<{ agentCommand: typeof agentCommand }>(bundleFile);
if (mode === "setup") {
  bundle.write();
} else {
  process.once("message", (message) => {
    if (message !== "write") return;
    bundle.write();
    process.exit(0);
  });
  // The agent ending before the parent asked for the cache is a failed run (its exit code says why), never a wait.
  void bundle.exports.agentCommand().then((code) => process.exit(code === 0 ? 1 : code));
}
