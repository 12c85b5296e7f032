/**
 * Child process of the sign-in storm (figure 4): hosts N in-process agents, each with its own MSAL client,
 * MQTT connection and state directory, as N devices coming back after a power cut. The parent times them
 * through MQTT; this process only builds, starts and stops them, and counts failures.
 *
 * Messages from the parent: "start", "stop". To the parent: {type: "ready", rssMiB}, {type: "started"},
 * {type: "failures", count, reasons}, {type: "stopped"}.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { Agent } from "../src/agent.js";
import { loadConfig } from "../src/config/index.js";
import { rssMiB } from "./lib/proc.js";

interface StormWorkerInput {
  readonly count: number;
  readonly idPrefix: string;
  readonly stateRoot: string;
  readonly env: Record<string, string>;
}

const input = JSON.parse(process.env["BENCH_STORM_INPUT"] ?? "{}") as StormWorkerInput;
const send = (message: object) => process.send?.(message);

// One quiet logger for all: N pino destinations would measure pino, not the agents.
const logger = pino({ level: "warn" }, pino.destination({ dest: 2, sync: false }));
const failures: string[] = [];
const agents: Agent[] = [];
const rssBefore = rssMiB(process.pid);
for (let i = 0; i < input.count; i++) {
  const deviceId = `${input.idPrefix}-${i}`;
  const stateDir = join(input.stateRoot, deviceId);
  await mkdir(stateDir, { recursive: true });
  const agent = new Agent({
    config: loadConfig({ ...input.env, EDGE_SIGNIN_DEVICE_ID: deviceId, EDGE_SIGNIN_STATE_DIR: stateDir }),
    logger,
  });
  agent.on("sign_in_failed", (failure) => failures.push(`${deviceId}: ${failure.reason} ${failure.message}`));
  agents.push(agent);
}
send({ type: "ready", rssMiB: rssBefore });

process.on("message", (message: unknown) => {
  if (message === "start") {
    Promise.all(
      agents.map((agent) =>
        agent.start().catch((error: unknown) => {
          failures.push(`${agent.config.deviceId}: start failed: ${String(error)}`);
        }),
      ),
    ).then(
      () => send({ type: "started" }),
      () => undefined,
    );
  } else if (message === "failures") {
    send({ type: "failures", count: failures.length, reasons: failures.slice(0, 10) });
  } else if (message === "stop") {
    Promise.allSettled(agents.map((agent) => agent.stop())).then(
      () => {
        send({ type: "stopped" });
        process.disconnect();
      },
      () => undefined,
    );
  }
});
