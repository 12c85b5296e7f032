/**
 * Child process that hosts many agents, for the cluster journey (test/cluster) and the cluster storm (bench): each
 * agent with its own device id, state directory, MQTT connection and MSAL client, as many devices would be. The
 * agent code is the shipped library build (`dist/src`, what `import "edge-signin"` loads), not the sources: only
 * the types come from src.
 *
 * Input: FLEET_INPUT_FILE, a file holding JSON {@link FleetInput}. IPC from the parent: "start", "status", "stop". To the parent:
 * {type: "ready"}, {type: "started", failures}, {type: "status", states, failures}, {type: "stopped"}.
 */
import { mkdir, readFile } from "node:fs/promises";
import { pino } from "pino";
import type * as Library from "../../src/index.js";

export interface FleetInput {
  /** Each agent's whole environment (device id, state directory, URL list with its home node first, ...). */
  readonly agents: ReadonlyArray<Readonly<Record<string, string>>>;
}

/** An agent's state as `status` reports it: its device id, state, and whether it is connected to a broker. */
export interface FleetAgentState {
  readonly deviceId: string;
  readonly state: string;
  readonly mqttProtocolVersion: number | undefined;
}

const LIBRARY = new URL("../../dist/src/index.js", import.meta.url).href;
const { createAgent, loadConfig } = (await import(LIBRARY)) as typeof Library;

const inputFile = process.env["FLEET_INPUT_FILE"];
if (!inputFile) throw new Error("fleet worker: FLEET_INPUT_FILE is not set");
const input = JSON.parse(await readFile(inputFile, "utf8")) as FleetInput;
const send = (message: object) => process.send?.(message);
// One quiet logger for all: warnings and errors only, on stderr, which the parent keeps for its failure message.
const logger = pino({ level: "warn" }, pino.destination({ dest: 2, sync: false }));
const failures: string[] = [];
const agents: Library.Agent[] = [];
for (const env of input.agents) {
  const config = loadConfig(env);
  await mkdir(config.stateDir, { recursive: true });
  const agent = createAgent(config, { logger });
  agent.on("sign_in_failed", (failure) =>
    failures.push(`${config.deviceId}: ${failure.reason} ${failure.message}`),
  );
  agents.push(agent);
}
send({ type: "ready" });

const states = (): FleetAgentState[] =>
  agents.map((agent) => {
    const status = agent.status();
    return {
      deviceId: agent.config.deviceId,
      state: status.state,
      mqttProtocolVersion: status.mqttProtocolVersion,
    };
  });

process.on("message", (message: unknown) => {
  if (message === "start") {
    void Promise.all(
      agents.map((agent) =>
        agent.start().catch((error: unknown) => {
          failures.push(`${agent.config.deviceId}: start failed: ${String(error)}`);
        }),
      ),
    ).then(() => send({ type: "started", failures }));
  } else if (message === "status") {
    send({ type: "status", states: states(), failures });
  } else if (message === "stop") {
    void Promise.allSettled(agents.map((agent) => agent.stop())).then(() => {
      send({ type: "stopped" });
      process.disconnect();
    });
  }
});
