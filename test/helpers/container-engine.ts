/**
 * The container engine the tests need (the Mosquitto container, the image and the compose stack), made ready by
 * vitest's globalSetup, so that `npm test` alone is the whole test command:
 *  - an engine that answers `docker info` (Docker Desktop, a system dockerd, Podman's socket) is used as it is;
 *  - else, as root with Debian's `dockerd` installed, one is started for this run and stopped (by its pid, and
 *    only that one) when the run ends;
 *  - then docker/stand-ins/build.sh makes local stand-ins for the official base images, where they are neither
 *    present nor pullable (an air-gapped machine); it does nothing where they are.
 * Where no engine can be had, it says so on stderr and the tests that need one fail, naming what is missing.
 */
import { execFile, spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENGINE_START_TIMEOUT_MS = 30_000;
const STAND_INS_TIMEOUT_MS = 10 * 60_000;

async function engineAnswers(): Promise<boolean> {
  try {
    await run("docker", ["info"], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function canRun(command: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/** Makes an engine and the base images ready; resolves with a function that undoes what this started. */
export async function prepareContainerEngine(): Promise<() => Promise<void>> {
  let stop = () => Promise.resolve();
  if (!(await engineAnswers())) {
    const root = process.getuid?.() === 0;
    if (!root || !(await canRun("dockerd"))) {
      process.stderr.write(
        "container engine: none answers `docker info`, and none can be started here " +
          `(${root ? "no dockerd: apt-get install docker.io" : "not root"}); the tests that need one will fail.\n`,
      );
      return stop;
    }
    stop = await startDockerd();
  }
  await run("bash", [`${REPO}docker/stand-ins/build.sh`], { timeout: STAND_INS_TIMEOUT_MS }).catch(
    (error: Error & { stderr?: string }) => {
      process.stderr.write(
        `container engine: stand-in images could not be made: ${error.stderr ?? error.message}\n`,
      );
    },
  );
  return stop;
}

async function startDockerd(): Promise<() => Promise<void>> {
  mkdirSync(`${REPO}test-artifacts`, { recursive: true });
  const log = openSync(`${REPO}test-artifacts/dockerd.log`, "a");
  // Detached: the engine must outlive no test, but it must not share the test runner's process group either
  // (a Ctrl-C to vitest is then not a SIGINT to dockerd halfway through a container's start).
  const dockerd = spawn("dockerd", [], { detached: true, stdio: ["ignore", log, log] });
  dockerd.unref();
  const pid = dockerd.pid;
  process.stderr.write(`container engine: started dockerd (pid ${String(pid)}) for this run\n`);
  const deadline = Date.now() + ENGINE_START_TIMEOUT_MS;
  while (!(await engineAnswers())) {
    if (Date.now() > deadline || dockerd.exitCode !== null)
      throw new Error(
        `dockerd did not answer within ${ENGINE_START_TIMEOUT_MS} ms: see test-artifacts/dockerd.log`,
      );
    await sleep(250);
  }
  return async () => {
    if (pid === undefined || dockerd.exitCode !== null) return;
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && dockerd.exitCode === null; i++) await sleep(100);
    if (dockerd.exitCode === null) process.kill(pid, "SIGKILL");
  };
}
