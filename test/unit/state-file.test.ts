import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomicSync } from "../../src/storage/atomic-write.js";
import { readBoundedFile, readBoundedFileSync } from "../../src/storage/state-file.js";

describe("state files as untrusted input", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-signin-state-file-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("reads a regular file under the limit, and names what is wrong with anything else", async () => {
    const ok = join(dir, "ok.json");
    await writeFile(ok, "{}");
    const big = join(dir, "big");
    await writeFile(big, Buffer.alloc(2048));
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const folder = join(dir, "folder");
    await mkdir(folder);

    for (const read of [readBoundedFileSync, (path: string, max: number) => readBoundedFile(path, max)]) {
      expect(await read(ok, 1024)).toStrictEqual({ status: "ok", data: Buffer.from("{}") });
      expect(await read(join(dir, "none"), 1024)).toStrictEqual({ status: "missing" });
      expect(await read(big, 1024)).toStrictEqual({
        status: "bad",
        problem: "2048 bytes, more than the limit of 1024",
      });
      expect(await read(fifo, 1024)).toStrictEqual({
        status: "bad",
        problem: "not a regular file (a FIFO, socket or device)",
      });
      expect(await read(folder, 1024)).toStrictEqual({ status: "bad", problem: "a directory, not a file" });
    }
  });

  it("an atomic write that fails leaves no temp file behind", async () => {
    // The target is a directory: the rename fails after the temp file was written.
    const target = join(dir, "target");
    await mkdir(target);
    await writeFile(join(target, "keep"), "x");
    expect(() => writeFileAtomicSync(target, "data")).toThrow();
    expect((await readdir(dir)).sort()).toStrictEqual(["target"]);
    writeFileAtomicSync(join(dir, "file"), "data");
    expect((await readdir(dir)).sort()).toStrictEqual(["file", "target"]);
  });
});
