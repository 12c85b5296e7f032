/**
 * Writes the V8 code cache of the agent's bundle beside it (`dist/bundle/agent.cjs.cache`), read-only, for that
 * exact bundle (src/code-cache.ts). scripts/bundle.ts runs this in a fresh process, so nothing compiled for the
 * build itself ends up in the cache and the V8 flags are the agent's. The Node that runs it should be the one
 * that will run the bundle: the image's build stage is; a package installed under another Node compiles from
 * source (V8 refuses the cache).
 *
 *   node --import tsx scripts/make-code-cache.ts dist/bundle/agent.cjs
 */
import { setFlagsFromString } from "node:v8";
import { AGENT_V8_FLAGS, writeCodeCache } from "../src/code-cache.js";

const bundleFile = process.argv[2];
if (!bundleFile) throw new Error("usage: make-code-cache.ts BUNDLE_FILE");
for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
writeCodeCache(bundleFile);
