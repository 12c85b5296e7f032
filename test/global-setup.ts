/**
 * Runs once before any test file (vitest `globalSetup`):
 *  - builds the shipped bundle from the current sources, so the processes the tests start (test/helpers/cli.ts)
 *    run exactly what `npm start`, the bin and the image run;
 *  - makes a container engine and the base images ready (test/helpers/container-engine.ts), and on teardown stops the
 *    engine if, and only if, this run started it.
 */
import { bundle } from "../scripts/bundle.js";
import { prepareContainerEngine } from "./helpers/container-engine.js";

export default async function setup(): Promise<() => Promise<void>> {
  const [, stopEngine] = await Promise.all([bundle(), prepareContainerEngine()]);
  return stopEngine;
}
