/**
 * One contender for a state directory's lock, as a process of its own (a pid of its own, as an agent has): waits
 * until the given time (ms since the epoch) so that all contenders try at the same moment, tries once, prints
 * `held` or `refused`, and holds a lock it won for a while so that the others see a live owner.
 */
import { StateDirLock, StateDirLockedError } from "../../src/storage/state-lock.js";

const [dir, at] = process.argv.slice(2);
if (dir === undefined || at === undefined) throw new Error("usage: lock-contender DIR START_MS");
const start = Number(at);
// A busy wait: a timer would wake each process at its own moment, and the race is about microseconds.
while (Date.now() < start) {
  // Waiting for the start.
}
try {
  new StateDirLock(dir).acquire();
  process.stdout.write("held\n");
  setTimeout(() => process.exit(0), 3_000);
} catch (error) {
  process.stdout.write(error instanceof StateDirLockedError ? "refused\n" : `failed: ${String(error)}\n`);
  process.exit(0);
}
