import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOCK_FILE } from "../../src/storage/state-lock.js";
import { eventually, startAgentProcess, type AgentProcess } from "../helpers/agent-process.js";
import { startFaultyFront } from "../helpers/faulty-front.js";
import { useTestBed } from "../helpers/fixture.js";

describe("the state directory lock, across crashes and restarts", () => {
  const used = useTestBed();
  const { bed, probe } = used;

  /** A live process that is no agent (what a pid is handed to after a crash or a reboot), ended after the test. */
  const unrelatedProcess = (): number => {
    const child = spawn("sleep", ["120"], { stdio: "ignore" });
    used.afterThisTest(() => child.kill("SIGKILL"));
    if (child.pid === undefined) throw new Error("could not start sleep");
    return child.pid;
  };

  const shows = async (agent: AgentProcess) =>
    probe.next(agent.topics.display, (m) => m.payload.length > 0, 30_000);

  it("a lock naming a pid that another process has since the crash does not block the start; a live agent still does", async () => {
    const env = bed.env({ EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "lock-")) });
    const lock = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", LOCK_FILE);
    const crashed = startAgentProcess(used, env);
    await shows(crashed);
    expect(await crashed.stop("SIGKILL")).toBe("SIGKILL");
    const left = await readFile(lock, "utf8");
    expect(left).toContain(String(crashed.cli.child.pid));

    // The pid now belongs to a live process that is no agent (pid reuse after a power cut, pid 1 under `init`):
    // the lock as the crashed agent left it, with that pid in it.
    const other = unrelatedProcess();
    await writeFile(lock, left.replace(String(crashed.cli.child.pid), String(other)));
    const second = startAgentProcess(used, env);
    await shows(second);

    // A second live agent on the directory is refused, naming the first.
    const third = startAgentProcess(used, env);
    expect(await third.cli.exited).toBe(3);
    expect(third.cli.stderr()).toContain(`another edge-signin agent (pid ${second.cli.child.pid})`);
    expect(await second.stop()).toBe(0);
    expect(existsSync(lock)).toBe(false);

    // A lock an older version wrote (a bare pid) naming a process that started after it was written.
    await writeFile(lock, `${unrelatedProcess()}\n`);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(lock, anHourAgo, anHourAgo);
    const fourth = startAgentProcess(used, env);
    await shows(fourth);
  }, 120_000);

  it("two agents started at once over a stale lock: exactly one runs, the other exits 3", async () => {
    for (let trial = 1; trial <= 5; trial++) {
      const env = bed.env({ EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "race-")) });
      await mkdir(env["EDGE_SIGNIN_STATE_DIR"] ?? "", { recursive: true, mode: 0o700 });
      await writeFile(join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", LOCK_FILE), "999999\n");
      const both = [startAgentProcess(used, env), startAgentProcess(used, env)];
      const refused = await eventually(
        () => both.find((agent) => agent.cli.child.exitCode !== null),
        `one of the two agents of trial ${trial} refused`,
        30_000,
      );
      expect(refused.cli.child.exitCode).toBe(3);
      const runner = both.find((agent) => agent !== refused) as AgentProcess;
      await shows(runner);
      expect(runner.cli.child.exitCode).toBe(null);
      expect(await runner.stop()).toBe(0);
    }
  }, 180_000);

  it("SIGTERM while a provider request hangs ends at the deadline and leaves no lock behind", async () => {
    const front = await startFaultyFront(bed.idp, bed.stateDir);
    used.afterThisTest(() => front.close());
    const env = bed.env({
      EDGE_SIGNIN_STATE_DIR: await mkdtemp(join(bed.stateDir, "hang-")),
      EDGE_SIGNIN_AUTHORITY: front.authority,
      EDGE_SIGNIN_IDP_CA_FILE: front.caFile,
      EDGE_SIGNIN_HTTP_TIMEOUT_SECONDS: "600",
    });
    const lock = join(env["EDGE_SIGNIN_STATE_DIR"] ?? "", LOCK_FILE);
    const agent = startAgentProcess(used, env);
    await shows(agent);
    const hung = front.failPolls(["hang"]);
    await hung;
    expect(await agent.stop()).toBe(0);
    expect(agent.logLines().some((l) => l["msg"] === "shutdown deadline passed; exiting anyway")).toBe(true);
    expect(existsSync(lock)).toBe(false);
    const next = startAgentProcess(used, env);
    await shows(next);
  }, 120_000);
});
