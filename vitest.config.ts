import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real brokers and identity providers: give them room, never retry them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Builds the shipped bundle once; every process a test starts runs it (test/helpers/cli.ts).
    globalSetup: ["test/global-setup.ts"],
    // testcontainers' Ryuk helper would be pulled from a registry; each test removes its own containers instead.
    env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
    // The JSON report lets .ci/run print one closing "N passed, N failed" line that CI can read.
    reporters: ["default", "json"],
    outputFile: { json: "test-artifacts/vitest-results.json" },
  },
});
