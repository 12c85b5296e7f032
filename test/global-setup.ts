/**
 * Runs once before any test file (vitest `globalSetup`): builds the shipped bundle from the current sources, so
 * the processes the tests start (test/helpers/cli.ts) run exactly what `npm start`, the bin and the image run.
 */
import { bundle } from "../scripts/bundle.js";

export default async function setup(): Promise<void> {
  await bundle();
}
