/**
 * Where a start's time and memory go, at the moment the code reaches the display: one agent run as `npm start`
 * runs it (first boot: empty STATE_DIR), with a V8 CPU profile of the whole start and a heap snapshot taken when
 * the display message arrives. Open both in Chrome DevTools.
 *
 *   npx tsx bench/profile-start.ts [OUT_DIR]     # writes OUT_DIR/start.cpuprofile and OUT_DIR/at-code.heapsnapshot
 */
import { mkdir, mkdtemp, readdir, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { agentEnv, BUNDLE_ENTRY } from "./cold-start.js";
import { startBed } from "./lib/bed.js";
import { rssMiB, spawnNode, within } from "./lib/proc.js";
import { readFileSync } from "node:fs";

const outDir = resolve(process.argv[2] ?? (await mkdtemp(join(tmpdir(), "edge-signin-profile-"))));
await mkdir(outDir, { recursive: true });
const bed = await startBed(1);
try {
  const stateDir = await mkdtemp(join(bed.scratch, "state-"));
  const deviceId = `profile-${Date.now().toString(36)}`;
  const proc = spawnNode(
    [
      "--cpu-prof",
      "--cpu-prof-interval=100",
      `--cpu-prof-dir=${outDir}`,
      "--heapsnapshot-signal=SIGUSR2",
      BUNDLE_ENTRY,
      "agent",
    ],
    { ...agentEnv(bed, deviceId, stateDir) },
  );
  const display = await within(bed.watcher.next("display", deviceId), 60_000, "the display");
  const pid = proc.child.pid as number;
  await sleep(1_500);
  process.stderr.write(
    `code on the display ${(display.at - proc.spawnedAt).toFixed(0)} ms after spawn; 1.5 s later: RSS ${rssMiB(pid).toFixed(1)} MiB (${residentKinds(pid)})\n`,
  );
  // The snapshot is written in the agent's cwd (this one) as Heap.<date>.<pid>...heapsnapshot.
  proc.child.kill("SIGUSR2");
  await sleep(3_000);
  await proc.stop();
  for (const name of await readdir(".")) {
    if (name.endsWith(".heapsnapshot") && name.includes(String(pid)))
      await rename(name, join(outDir, "at-code.heapsnapshot"));
  }
  for (const name of await readdir(outDir)) {
    if (name.endsWith(".cpuprofile")) await rename(join(outDir, name), join(outDir, "start.cpuprofile"));
  }
  process.stderr.write(`written: ${outDir}\n`);
} finally {
  await bed.close();
}

/** RssAnon (heaps, malloc), RssFile (the node binary's and libraries' pages), RssShmem, in MiB. */
function residentKinds(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return ["RssAnon", "RssFile", "RssShmem"]
    .map((field) => {
      const kib = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
      return `${field} ${(kib / 1024).toFixed(1)}`;
    })
    .join(", ");
}
