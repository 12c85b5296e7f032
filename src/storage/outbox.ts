import { linkSync, lstatSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import * as z from "zod/mini";
import { looksSealed, open as unseal, seal } from "../crypto/seal.js";
import { fsyncPath } from "./fsync.js";
import { isDiskFull, writeFileAtomicSync } from "./atomic-write.js";
import { readBoundedFileSync } from "./state-file.js";

/** One event waiting for the broker's acknowledgement. */
export interface OutboxEntry {
  /** Position in the outbox: entries go out in this order, across restarts too. */
  readonly seq: number;
  readonly topic: string;
  /** The event as published, `id` included: a redelivery after a restart carries the same `id`. */
  readonly payload: { readonly id: string };
  /** Bytes on disk, for the size bound. */
  readonly bytes: number;
}

export interface OutboxOptions {
  /** Most entries kept; the oldest are dropped beyond it. */
  readonly maxEvents: number;
  /** Most bytes kept; the oldest are dropped beyond it. */
  readonly maxBytes?: number;
  /**
   * The token cache's key (EDGE_SIGNIN_CACHE_KEY): entries are then sealed the same way (AES-256-GCM), since an
   * `authenticated` event holds the person's claims, and with PUBLISH_ID_TOKEN the ID token itself.
   */
  readonly key?: Buffer | undefined;
  /**
   * Where an entry may go (the MQTT outbox: this device's event topics; the webhook queue: the event types).
   * The outbox is a directory in STATE_DIR: an entry read back that names anything else was not written by this
   * agent, and is set aside rather than published.
   */
  readonly accepts: (topic: string) => boolean;
}

/** Largest entry read back: far above any event (an ID token and its claims are a few KB), far below memory. */
export const MAX_ENTRY_BYTES = 256 * 1024;

/** A month-long broker outage must not fill the disk; 10 MB is thousands of the largest events. */
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const ENTRY = /^(\d{16})\.json$/;
/**
 * The highest sequence number this agent ever writes: a trillion events, far beyond any device's life, far
 * below 2^53 (where `seq + 1` stops being a new number). A file name beyond it was not written by this agent.
 */
export const MAX_SEQ = 999_999_999_999;
/**
 * How long a written entry waits before it is forced onto the disk. Most are acknowledged by the broker (and
 * deleted) well within it and never cost an fsync; in a sign-in storm, hundreds of fsyncs would otherwise fill
 * libuv's thread pool, where every other file operation of the process then queues.
 */
const SYNC_DELAY_MS = 250;
const StoredEntry = z.object({
  v: z.literal(1),
  topic: z.string().check(z.minLength(1)),
  payload: z.looseObject({ id: z.string().check(z.minLength(1)) }),
});

/**
 * The durable outbox of MQTT events: one file per event in a directory of `STATE_DIR`, named by a sequence
 * number so a directory listing gives the order back. An event is written (temp file, rename) before anyone
 * tries to publish it, and removed only once the broker acknowledged it, so an event survives a broker outage,
 * a crash or a SIGKILL. Writes are synchronous on purpose: events are few, and an event must be in the file
 * system before the code that raised it goes on. Forcing it onto the disk (fsync of the file and the directory,
 * ~5 ms each on a Pi's SD card) happens in the background a moment later, and only for events the broker has
 * not acknowledged by then: it only matters for a power cut, which within that moment loses the event either way.
 *
 * A disk that refuses writes does not stop delivery: the entry is kept in memory and an error is logged.
 */
export class Outbox {
  private readonly entries: OutboxEntry[] = [];
  private nextSeq = 1;
  private bytes = 0;
  private durable = true;
  /** The last write found the disk full (said once; the next write tries again). */
  private diskFull = false;
  private readonly maxBytes: number;
  /** Entries written but not yet forced to disk, and the background flush that forces them. */
  private unsynced = new Set<string>();
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  constructor(
    private readonly dir: string,
    private readonly options: OutboxOptions,
    private readonly log: Logger,
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /**
   * Reads what a previous run left; an entry that is damaged, too large, not sealed when a key is set, or bound
   * for a topic this outbox does not serve is moved aside with a warning, never a crash, and the rest load.
   */
  open(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // A symbolic link in its place would take every write somewhere else.
      if (!lstatSync(this.dir).isDirectory()) throw new Error(`${this.dir} is not a directory`);
    } catch (error) {
      this.degrade(error, "cannot create the outbox directory");
      return;
    }
    let names: string[];
    try {
      names = readdirSync(this.dir).sort();
    } catch (error) {
      this.degrade(error, "cannot read the outbox directory");
      return;
    }
    for (const name of names) {
      const match = ENTRY.exec(name);
      if (!match) {
        // A temp file from a write cut short by a crash: its event was never handed to anyone.
        if (name.endsWith(".tmp")) this.tryUnlink(name);
        continue;
      }
      const seq = Number(match[1]);
      const entry =
        seq >= 1 && seq <= MAX_SEQ
          ? this.read(name, seq)
          : this.setAside(name, "sequence number outside the range this agent writes");
      if (entry) {
        this.entries.push(entry);
        this.bytes += entry.bytes;
      }
    }
    this.renumber();
    if (this.entries.length > 0)
      this.log.info(
        { events: this.entries.length },
        "outbox holds events not yet acknowledged by the broker",
      );
    this.enforceBounds();
  }

  /**
   * The sequence is the outbox's own: the entries read back keep their order and take the numbers 1..n (each
   * file moved down onto a name nothing holds, in ascending order, so a crash halfway keeps the order),
   * and new events follow from n + 1. Whatever names were found, the next number is small and unused.
   */
  private renumber(): void {
    for (const [index, entry] of this.entries.entries()) {
      const seq = index + 1;
      if (entry.seq === seq) continue;
      try {
        // A hard link, then the old name removed: unlike a rename, the link fails on a name that is taken.
        linkSync(join(this.dir, fileName(entry.seq)), join(this.dir, fileName(seq)));
        unlinkSync(join(this.dir, fileName(entry.seq)));
        this.entries[index] = { ...entry, seq };
      } catch (error) {
        // Left under its old name (it is still delivered and removed by it); numbering goes on above it.
        this.log.warn({ file: fileName(entry.seq), err: error }, "cannot renumber an outbox entry");
        this.nextSeq = Math.max(this.nextSeq, entry.seq + 1);
        return;
      }
    }
    this.nextSeq = Math.max(this.nextSeq, this.entries.length + 1);
  }

  /** Stores an event durably; returns its entry. Beyond the bounds the oldest entries are dropped. */
  append(topic: string, payload: OutboxEntry["payload"]): OutboxEntry {
    const seq = this.nextSeq++;
    const plain = JSON.stringify({ v: 1, topic, payload });
    const text = this.options.key ? seal(plain, this.options.key) : plain;
    const entry: OutboxEntry = { seq, topic, payload, bytes: Buffer.byteLength(text) };
    // Never write what the next start would refuse to read back (MAX_ENTRY_BYTES): it goes out from memory.
    if (seq > MAX_SEQ)
      this.log.warn(
        { id: payload.id, seq },
        "outbox sequence exhausted; the event is delivered from memory only until the agent restarts",
      );
    else if (entry.bytes > MAX_ENTRY_BYTES)
      this.log.warn(
        { id: payload.id, bytes: entry.bytes },
        "event too large to keep on disk; it is delivered from memory only",
      );
    else if (this.durable) {
      try {
        this.write(fileName(seq), text);
        if (this.diskFull) this.log.info({ dir: this.dir }, "the outbox is written to disk again");
        this.diskFull = false;
      } catch (error) {
        if (!isDiskFull(error)) this.degrade(error, "cannot write to the outbox");
        else if (!this.diskFull) {
          // A full disk may pass: the next event tries again. Said once per outage, not once per event.
          this.diskFull = true;
          this.log.error(
            { dir: this.dir, err: error, diskFull: true },
            "disk full: events are kept in memory only until STATE_DIR has room again; they are lost if the agent stops before the broker has them",
          );
        }
      }
    }
    this.entries.push(entry);
    this.bytes += entry.bytes;
    this.enforceBounds();
    return entry;
  }

  /** The oldest entry, the next to publish. */
  first(): OutboxEntry | undefined {
    return this.entries[0];
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * Half full (by count or bytes): what is left is kept for the events the agent raises on its own, and
   * commands are answered "busy" (Reporter.busy) rather than let them push unacknowledged events out.
   */
  get nearlyFull(): boolean {
    return this.entries.length * 2 >= this.options.maxEvents || this.bytes * 2 >= this.maxBytes;
  }

  /** The broker acknowledged the entry (or it can never be delivered): forget it. */
  remove(seq: number): void {
    const index = this.entries.findIndex((entry) => entry.seq === seq);
    if (index < 0) return;
    const [entry] = this.entries.splice(index, 1);
    this.bytes -= entry?.bytes ?? 0;
    if (this.durable) this.tryUnlink(fileName(seq));
  }

  private enforceBounds(): void {
    while (
      this.entries.length > 1 &&
      (this.entries.length > this.options.maxEvents || this.bytes > this.maxBytes)
    ) {
      const oldest = this.entries[0] as OutboxEntry;
      this.log.warn(
        { id: oldest.payload.id, topic: oldest.topic, events: this.entries.length, bytes: this.bytes },
        "outbox full; dropping its oldest event, which the broker never acknowledged",
      );
      this.remove(oldest.seq);
    }
  }

  private read(name: string, seq: number): OutboxEntry | undefined {
    let problem: string;
    try {
      const read = readBoundedFileSync(join(this.dir, name), MAX_ENTRY_BYTES);
      if (read.status !== "ok") problem = read.status === "bad" ? read.problem : "missing";
      else {
        const text = read.data.toString("utf8");
        const decoded = this.decode(text);
        const parsed = StoredEntry.safeParse(decoded.value);
        if (decoded.problem) problem = decoded.problem;
        else if (!parsed.success) problem = "not an outbox entry";
        else if (!this.options.accepts(parsed.data.topic))
          problem = "bound for a topic this outbox does not serve";
        else
          return {
            seq,
            topic: parsed.data.topic,
            payload: parsed.data.payload,
            bytes: Buffer.byteLength(text),
          };
      }
    } catch (error) {
      // Unreadable, a symbolic link (ELOOP), or not JSON.
      problem = (error as NodeJS.ErrnoException).code ?? "not JSON";
    }
    return this.setAside(name, problem);
  }

  private setAside(name: string, problem: string): undefined {
    this.log.warn({ file: name, problem }, "outbox entry is corrupt; skipping it (kept aside as .corrupt)");
    try {
      renameSync(join(this.dir, name), join(this.dir, `${name}.corrupt`));
    } catch {
      // Still skipped; it is read (and skipped) again at the next start.
    }
    return undefined;
  }

  /**
   * The stored JSON, unsealed when it was sealed. With a key set, only sealed entries are taken: this agent
   * writes nothing else then, so a plain one was planted (or left from before the key, and is not trusted).
   */
  private decode(text: string): { value?: unknown; problem?: string } {
    const parsed = JSON.parse(text) as unknown;
    if (!looksSealed(parsed))
      return this.options.key ? { problem: "not sealed, and a cache key is set" } : { value: parsed };
    if (!this.options.key) return { problem: "sealed, and no cache key is set" };
    const opened = unseal(parsed, this.options.key);
    return opened.ok ? { value: JSON.parse(opened.plaintext) } : { problem: `sealed: ${opened.problem}` };
  }

  private write(name: string, text: string): void {
    // A temp file of a random name, created exclusively and never through a link (src/storage/atomic-write.ts):
    // nothing planted in STATE_DIR is written through.
    writeFileAtomicSync(join(this.dir, name), text, { mode: 0o600 });
    this.unsynced.add(name);
    this.scheduleSync();
  }

  private scheduleSync(): void {
    this.syncTimer ??= setTimeout(() => this.startSync(), SYNC_DELAY_MS).unref();
  }

  /** Resolves once every entry written so far and still waiting is on the disk (call before the agent exits). */
  async flush(): Promise<void> {
    while (this.syncing || this.unsynced.size > 0) {
      if (!this.syncing) this.startSync();
      await this.syncing;
    }
  }

  private startSync(): void {
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    // Cleared once done, by the promise itself: syncToDisk may finish before this assignment does. Entries
    // written after its last look get the next round.
    this.syncing ??= this.syncToDisk().finally(() => {
      this.syncing = undefined;
      if (this.unsynced.size > 0) this.scheduleSync();
    });
  }

  /**
   * Forces the entries still waiting for the broker, then the directory (their names), onto the disk, off the
   * event loop. One round serves every entry written meanwhile; an entry already acknowledged (and removed)
   * needs nothing.
   */
  private async syncToDisk(): Promise<void> {
    while (this.unsynced.size > 0) {
      const waiting = new Set(this.entries.map((entry) => fileName(entry.seq)));
      const batch = [...this.unsynced].filter((name) => waiting.has(name));
      this.unsynced = new Set();
      if (batch.length === 0) continue;
      await Promise.all(batch.map((name) => fsyncPath(join(this.dir, name)).catch(this.syncFailed)));
      await fsyncPath(this.dir).catch(this.syncFailed);
    }
  }

  private readonly syncFailed = (error: unknown): void => {
    // An entry acknowledged (and removed) before its turn has nothing left to keep.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    this.log.warn(
      { dir: this.dir, err: error },
      "cannot force the outbox onto the disk; a power cut may lose events",
    );
  };

  private tryUnlink(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.warn({ file: name, err: error }, "cannot remove an outbox entry; it may be delivered again");
    }
  }

  private degrade(error: unknown, what: string): void {
    this.durable = false;
    this.log.error(
      { dir: this.dir, err: error },
      `${what}; events are kept in memory only and are lost if the agent stops before the broker has them`,
    );
  }
}

function fileName(seq: number): string {
  return `${String(seq).padStart(16, "0")}.json`;
}
