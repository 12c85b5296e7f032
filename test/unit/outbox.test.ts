import { randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { seal } from "../../src/crypto/seal.js";
import { MAX_ENTRY_BYTES, MAX_SEQ, Outbox } from "../../src/storage/outbox.js";
import { captureLogger } from "../helpers/fixture.js";

/** These tests are about order, bounds and durability: any topic will do (the checks have their own tests). */
const ANY = () => true;

describe("the durable outbox", () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "edge-signin-outbox-"));
    dir = join(root, "outbox");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const event = (id: string) => ({ id, type: "authenticated", deviceId: "tv" });

  it("keeps unacknowledged events on disk, in order, for the next run", async () => {
    const first = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, captureLogger().logger);
    first.open();
    first.append("edge-signin/tv/events/code_issued", event("a"));
    first.append("edge-signin/tv/events/authenticated", event("b"));
    first.append("edge-signin/tv/events/signed_out", event("c"));
    first.remove(first.first()?.seq ?? 0);

    const files = await readdir(dir);
    expect(files).toHaveLength(2);
    expect(JSON.parse(await readFile(join(dir, files[0] ?? ""), "utf8"))).toStrictEqual({
      v: 1,
      topic: "edge-signin/tv/events/authenticated",
      payload: event("b"),
    });

    const second = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, captureLogger().logger);
    second.open();
    expect(second.size).toBe(2);
    expect(second.first()?.payload).toStrictEqual(event("b"));
    // New events go after the old ones, even across runs.
    const next = second.append("edge-signin/tv/events/code_expired", event("d"));
    expect(next.seq).toBeGreaterThan(second.first()?.seq ?? Infinity);
  });

  it("writes an event before append returns and forces it onto the disk in the background; flush waits", async () => {
    const log = captureLogger();
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, log.logger);
    outbox.open();
    outbox.append("t/events/a", event("a"));
    const acknowledged = outbox.append("t/events/b", event("b"));
    // Already a file (a crash now keeps it) before any fsync ran; acknowledged before its fsync: nothing to keep.
    expect((await readdir(dir)).sort()).toHaveLength(2);
    outbox.remove(acknowledged.seq);
    await outbox.flush();
    expect(await readdir(dir)).toHaveLength(1);
    expect(log.lines().filter((l) => (l["level"] as number) >= 40)).toStrictEqual([]);
    // A second flush with nothing pending returns at once.
    await outbox.flush();
  });

  it("drops the oldest events beyond its bound, with a warning", () => {
    const log = captureLogger();
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 3 }, log.logger);
    outbox.open();
    for (const id of ["1", "2", "3", "4", "5"]) outbox.append("t/events/x", event(id));
    expect(outbox.size).toBe(3);
    expect(outbox.first()?.payload.id).toBe("3");
    const warnings = log
      .lines()
      .filter(
        (l) => l["msg"] === "outbox full; dropping its oldest event, which the broker never acknowledged",
      );
    expect(warnings.map((w) => w["id"])).toStrictEqual(["1", "2"]);
  });

  it("bounds its size on disk too", () => {
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 1000, maxBytes: 1000 }, captureLogger().logger);
    outbox.open();
    for (let i = 0; i < 20; i++) outbox.append("t/events/x", { id: `${i}-${"x".repeat(200)}` });
    expect(outbox.size).toBeLessThanOrEqual(4);
    expect(outbox.first()?.payload.id).not.toMatch(/^0-/);
  });

  it("skips a corrupt entry with a warning and loads the rest", async () => {
    const seed = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, captureLogger().logger);
    seed.open();
    seed.append("t/events/x", event("good-1"));
    seed.append("t/events/x", event("good-2"));
    await writeFile(join(dir, "0000000000000002.json"), '{"v":1,"topic":"t/events/x","payl');
    await writeFile(join(dir, "0000000000000009.json"), JSON.stringify({ v: 1, topic: "t", payload: {} }));
    await writeFile(join(dir, "0000000000000010.json.tmp"), "half a wri");

    const log = captureLogger();
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, log.logger);
    outbox.open();
    expect(outbox.size).toBe(1);
    expect(outbox.first()?.payload.id).toBe("good-1");
    const corrupt = log
      .lines()
      .filter((l) => l["msg"] === "outbox entry is corrupt; skipping it (kept aside as .corrupt)");
    expect(corrupt.map((l) => l["file"])).toStrictEqual(["0000000000000002.json", "0000000000000009.json"]);
    expect((await readdir(dir)).sort()).toStrictEqual([
      "0000000000000001.json",
      "0000000000000002.json.corrupt",
      "0000000000000009.json.corrupt",
    ]);
    // New events follow the entries kept; what was set aside holds no number.
    expect(outbox.append("t/events/x", event("new")).seq).toBe(2);
  });

  it("seals its entries with the cache key, and skips what it cannot open", async () => {
    const key = randomBytes(32);
    const sealed = new Outbox(dir, { accepts: ANY, maxEvents: 10, key }, captureLogger().logger);
    sealed.open();
    const event = { id: "sealed-1", claims: { name: "Alice Secret" } };
    sealed.append("t/events/authenticated", event);
    const [name] = await readdir(dir);
    const onDisk = await readFile(join(dir, name ?? ""), "utf8");
    expect(onDisk).not.toContain("Alice Secret");
    expect(onDisk).not.toContain("sealed-1");

    const reopened = new Outbox(dir, { accepts: ANY, maxEvents: 10, key }, captureLogger().logger);
    reopened.open();
    expect(reopened.first()?.payload).toStrictEqual(event);

    const log = captureLogger();
    const otherKey = new Outbox(dir, { accepts: ANY, maxEvents: 10, key: randomBytes(32) }, log.logger);
    otherKey.open();
    expect(otherKey.size).toBe(0);
    expect(log.lines().map((l) => l["msg"])).toContain(
      "outbox entry is corrupt; skipping it (kept aside as .corrupt)",
    );
  });

  it("never writes through a symbolic link planted at its temp file's name (finding 6)", async () => {
    const outside = join(root, "outside.txt");
    await writeFile(outside, "not the outbox's\n");
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, captureLogger().logger);
    outbox.open();
    // The name the next entry's temp file gets.
    await symlink(outside, join(dir, "0000000000000001.json.tmp"));
    outbox.append("t/events/x", event("a"));
    expect(await readFile(outside, "utf8")).toBe("not the outbox's\n");
    expect((await lstat(join(dir, "0000000000000001.json"))).isFile()).toBe(true);
    expect(JSON.parse(await readFile(join(dir, "0000000000000001.json"), "utf8"))).toStrictEqual({
      v: 1,
      topic: "t/events/x",
      payload: event("a"),
    });
  });

  it("sets aside entries bound elsewhere, unsealed under a key, oversized or linked, and loads the rest", async () => {
    const key = randomBytes(32);
    const own = (topic: string) => topic === "edge-signin/tv/events/authenticated";
    const seed = new Outbox(dir, { accepts: own, maxEvents: 10, key }, captureLogger().logger);
    seed.open();
    seed.append("edge-signin/tv/events/authenticated", event("good"));
    await writeFile(
      join(dir, "0000000000000002.json"),
      seal(
        JSON.stringify({ v: 1, topic: "edge-signin/other/events/authenticated", payload: event("x") }),
        key,
      ),
    );
    await writeFile(
      join(dir, "0000000000000003.json"),
      JSON.stringify({ v: 1, topic: "edge-signin/tv/events/authenticated", payload: event("plain") }),
    );
    await writeFile(
      join(dir, "0000000000000004.json"),
      seal(
        JSON.stringify({
          v: 1,
          topic: "edge-signin/tv/events/authenticated",
          payload: event("y".repeat(300_000)),
        }),
        key,
      ),
    );
    await symlink(join(dir, "0000000000000001.json"), join(dir, "0000000000000005.json"));
    const log = captureLogger();
    const reopened = new Outbox(dir, { accepts: own, maxEvents: 10, key }, log.logger);
    reopened.open();
    expect(reopened.size).toBe(1);
    expect(reopened.first()?.payload).toStrictEqual(event("good"));
    expect(
      log
        .lines()
        .filter((l) => l["msg"] === "outbox entry is corrupt; skipping it (kept aside as .corrupt)")
        .map((l) => [l["file"], l["problem"]]),
    ).toStrictEqual([
      ["0000000000000002.json", "bound for a topic this outbox does not serve"],
      ["0000000000000003.json", "not sealed, and a cache key is set"],
      [
        "0000000000000004.json",
        expect.stringMatching(new RegExp(`more than the limit of ${MAX_ENTRY_BYTES}$`)),
      ],
      ["0000000000000005.json", "unreadable (ELOOP)"],
    ]);
  });

  it("keeps its own sequence whatever names are planted: each new event its own file, in order", async () => {
    const planted = (id: string) => JSON.stringify({ v: 1, topic: "t/events/x", payload: event(id) });
    // One name past 2^53 (where seq + 1 is seq again), one far up the range, one at the top of the 16 digits.
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "9007199254740993.json"), planted("past-2^53"));
    await writeFile(join(dir, "0000765432109876.json"), planted("high"));
    await writeFile(join(dir, `${String(MAX_SEQ).padStart(16, "0")}.json`), planted("top"));
    const log = captureLogger();
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 100 }, log.logger);
    outbox.open();
    for (const id of ["e1", "e2", "e3", "e4"]) outbox.append("t/events/x", event(id));
    // No flush: what a SIGKILL leaves is what the next run finds.
    const reopened = new Outbox(dir, { accepts: ANY, maxEvents: 100 }, captureLogger().logger);
    reopened.open();
    const ids: string[] = [];
    for (let entry = reopened.first(); entry && ids.length < 10; entry = reopened.first()) {
      ids.push(entry.payload.id);
      expect(entry.seq).toBeLessThanOrEqual(ids.length + 1);
      reopened.remove(entry.seq);
    }
    // The name no agent writes is set aside, not renumbered onto another; the rest keep their order.
    expect(ids).toStrictEqual(["high", "top", "e1", "e2", "e3", "e4"]);
    expect((await readdir(dir)).sort()).toStrictEqual(["9007199254740993.json.corrupt"]);
    expect(log.lines().find((l) => l["file"] === "9007199254740993.json")?.["problem"]).toBe(
      "sequence number outside the range this agent writes",
    );
  });

  it("never writes an entry larger than it would read back; the event stays in memory", async () => {
    const log = captureLogger();
    const outbox = new Outbox(dir, { accepts: ANY, maxEvents: 10 }, log.logger);
    outbox.open();
    outbox.append("t/events/x", { id: `huge-${"x".repeat(MAX_ENTRY_BYTES)}` });
    expect(outbox.size).toBe(1);
    expect(await readdir(dir)).toStrictEqual([]);
    expect(log.lines().map((l) => l["msg"])).toContain(
      "event too large to keep on disk; it is delivered from memory only",
    );
  });

  it("keeps events in memory when the state directory cannot be written", async () => {
    const blocker = join(root, "not-a-directory");
    await writeFile(blocker, "");
    const log = captureLogger();
    const outbox = new Outbox(join(blocker, "outbox"), { accepts: ANY, maxEvents: 10 }, log.logger);
    outbox.open();
    outbox.append("t/events/x", event("a"));
    expect(outbox.first()?.payload.id).toBe("a");
    expect(log.lines().some((l) => l["level"] === 50)).toBe(true);
  });
});
