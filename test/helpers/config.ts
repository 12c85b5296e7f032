import { ConfigError } from "../../src/config/index.js";

/** The problems a configuration loader reports, one line each; none when it accepts the configuration. */
export function configProblems(load: () => unknown): readonly string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}
