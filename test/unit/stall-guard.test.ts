import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { STALLED_EXIT_CODE } from "../../src/cli/stall-guard.js";

const guard = fileURLToPath(new URL("../../src/cli/stall-guard.ts", import.meta.url));

/** A module that awaits a promise nobody settles, as the agent did when mqtt.js gave up after a refused CONNACK. */
function run(script: string) {
  return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("an entry point whose work runs out before its result", () => {
  it("says so in one line and exits with code 70, not Node's silent 13", () => {
    const result = run(`import { guardAgainstStall } from ${JSON.stringify(guard)};
guardAgainstStall();
await new Promise(() => undefined);`);
    expect({ status: result.status, stderr: result.stderr }).toStrictEqual({
      status: STALLED_EXIT_CODE,
      stderr:
        "edge-signin: internal error: the command stopped with nothing left to do and no result; please report it\n",
    });
  });

  it("stays out of the way once disarmed", () => {
    const result = run(`import { guardAgainstStall } from ${JSON.stringify(guard)};
const disarm = guardAgainstStall();
await new Promise((resolve) => setTimeout(resolve, 10));
disarm();
process.exitCode = 0;`);
    expect({ status: result.status, stderr: result.stderr }).toStrictEqual({ status: 0, stderr: "" });
  });
});
