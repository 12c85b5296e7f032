import { approveSignIn } from "../../src/dev/person.js";
import type { DeviceTopics, DisplayPayload, EventPayload } from "../../src/mqtt/topics.js";
import { deviceTopics } from "../../src/mqtt/topics.js";
import { startCli, type RunningCli } from "./cli.js";
import type { UsedTestBed } from "./fixture.js";

export { eventually } from "./eventually.js";

/** An agent process running the shipped bundle, stopped (SIGTERM, then SIGKILL) after the test. */
export interface AgentProcess {
  readonly cli: RunningCli;
  readonly env: Record<string, string>;
  readonly topics: DeviceTopics;
  /** Sends a signal (SIGTERM by default; SIGKILL after 10 s) and resolves with the exit code or signal name. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** The agent's log lines, parsed (pino JSON on stdout). */
  logLines(): Array<Record<string, unknown>>;
}

/** Starts the shipped bundle's `agent` with exactly `env`; it is stopped after the test that started it. */
export function startAgentProcess(
  used: Pick<UsedTestBed, "afterThisTest">,
  env: Record<string, string>,
): AgentProcess {
  const cli = startCli(["agent"], env);
  let stopped = false;
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (!stopped) {
      stopped = true;
      cli.child.kill(signal);
    }
    const timer = setTimeout(() => cli.child.kill("SIGKILL"), 10_000);
    const code = await cli.exited;
    clearTimeout(timer);
    return code;
  };
  used.afterThisTest(() => stop());
  return {
    cli,
    env,
    topics: deviceTopics("edge-signin", env["EDGE_SIGNIN_DEVICE_ID"] ?? ""),
    stop,
    logLines: () =>
      cli
        .stdout()
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** The code the agent shows now (the retained display message). */
export async function shownCode(used: UsedTestBed, topics: DeviceTopics, timeoutMs?: number) {
  return (
    await used.probe.next(topics.display, (m) => m.payload.length > 0, timeoutMs)
  ).json<DisplayPayload>();
}

/** `login` approves the code on the display; resolves with the `authenticated` event that follows. */
export async function signIn(used: UsedTestBed, agent: AgentProcess, login = "alice") {
  const code = await shownCode(used, agent.topics, 30_000);
  const event = used.probe.next(
    agent.topics.event("authenticated"),
    (m) => m.json<{ method: string }>().method === "device_code",
    30_000,
  );
  await approveSignIn(code.verificationUri, code.userCode, { ca: used.bed.idp.caPem, login });
  return (await event).json<EventPayload<"authenticated">>();
}

let transactions = 0;

/** Publishes a command with a fresh transaction id; resolves with its answer. */
export async function command(
  used: UsedTestBed,
  topics: DeviceTopics,
  name: string,
  timeoutMs = 15_000,
): Promise<{ status: string; error?: string; data?: unknown; transaction: number }> {
  const transaction = ++transactions;
  const answer = used.probe.next(
    topics.response(name),
    (m) => m.json<{ transaction?: number }>().transaction === transaction,
    timeoutMs,
  );
  await used.probe.publish(topics.request(name), JSON.stringify({ transaction }));
  return (await answer).json();
}
