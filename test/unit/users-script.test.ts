import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "../../docker/create-broker-users.sh");

/**
 * The users script refuses, before it writes anything, an id the ACL's patterns cannot hold: the shell would
 * split one with a space into several devices, and '/', '+' or '#' would be topic levels or wildcards.
 */
describe("docker/create-broker-users.sh", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-users-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(args: string[], cwd = dir) {
    const secrets = join(dir, "secrets");
    try {
      await promisify(execFile)("sh", [SCRIPT, "--local", ...args], {
        cwd,
        env: {
          PATH: process.env["PATH"],
          EDGE_SIGNIN_SECRETS_DIR: secrets,
          EDGE_SIGNIN_ACL_FILE: join(dir, "acl"),
        },
        timeout: 10_000,
      });
      return { code: 0, stderr: "", written: await readdir(secrets).catch(() => []) };
    } catch (error) {
      const failed = error as { code: number; stderr: string };
      return { code: failed.code, stderr: failed.stderr, written: await readdir(secrets).catch(() => []) };
    }
  }

  it.each([
    [["hall\tway"], "device id 'hall\tway'"],
    [["lobby", "tv 2"], "device id 'tv 2'"],
    [["tv\nkiosk"], "device id 'tv\nkiosk'"],
    [["floor+1"], "device id 'floor+1'"],
    [["--count", "3", "--prefix", "room "], "prefix 'room '"],
    [["--count", "3", "--prefix", "a#"], "prefix 'a#'"],
  ])("refuses %j, naming it, and writes nothing", async (args, named) => {
    const { code, stderr, written } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toContain(`${named} refused`);
    expect(written).toStrictEqual([]);
  });
});
