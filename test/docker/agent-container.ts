/**
 * The agent's image run the way a device maker runs it, for the image tests of every architecture: as the image's
 * own (non-root) user, read-only root file system, every capability dropped, no new privileges, an init process,
 * STATE_DIR on a named volume. Host networking, so the agent reaches the test's broker and identity provider on
 * 127.0.0.1 (as it would reach a broker on its own device); nothing addresses a container by its bridge IP.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { deviceTopics } from "../../src/mqtt/topics.js";
import type { TestBed } from "../helpers/fixture.js";
import type { MqttProbe } from "../helpers/mqtt-probe.js";
import { docker, HARDENED_RUN_FLAGS, type Teardown, uniqueName } from "./engine.js";

const CA_IN_CONTAINER = "/run/edge-signin/idp-ca.pem";
const STATE_DIR = "/var/lib/edge-signin";
/** The agent's heartbeat here (the image's HEALTHCHECK decides from it): stale after 3, so 3 s. */
const HEARTBEAT_SECONDS = 1;

export interface Device {
  readonly id: string;
  readonly volume: string;
  readonly topics: ReturnType<typeof deviceTopics>;
}

export interface Health {
  readonly Status: string;
  readonly Log: ReadonlyArray<{ readonly ExitCode: number; readonly Output: string }>;
}

export interface AgentContainersOptions {
  readonly image: string;
  readonly bed: TestBed;
  readonly probe: MqttProbe;
  readonly teardown: Teardown;
  /** `docker run --platform`: an image of another architecture than the engine's (run under emulation). */
  readonly platform?: string;
  /** How long a message or a health status may take to come (`probe.next`'s own default when absent). */
  readonly waitMs?: number;
  /** `docker stop --time`: the grace before the engine kills the agent (5 s, compose.yaml's, when absent). */
  readonly stopGraceSeconds?: number;
}

/** Runs agents from one image against one test bed; everything it makes is removed by the teardown given. */
export class AgentContainers {
  constructor(private readonly options: AgentContainersOptions) {}

  /** A device: its id and its STATE_DIR volume (removed after the file, with the containers that used it). */
  async newDevice(): Promise<Device> {
    const id = uniqueName("tv");
    const volume = uniqueName("state");
    await docker(["volume", "create", volume]);
    this.options.teardown.add(() => docker(["volume", "rm", "-f", volume]));
    return { id, volume, topics: deviceTopics("edge-signin", id) };
  }

  /** `docker run` of the agent on `device`, locked down as compose.yaml runs it; returns the container's name. */
  async runAgent(device: Device): Promise<string> {
    const { bed, image, platform, teardown } = this.options;
    const name = uniqueName("agent");
    teardown.add(() => docker(["rm", "-f", "-v", name]));
    const env = bed.env({
      EDGE_SIGNIN_DEVICE_ID: device.id,
      EDGE_SIGNIN_IDP_CA_FILE: CA_IN_CONTAINER,
      EDGE_SIGNIN_HEALTH_INTERVAL_SECONDS: String(HEARTBEAT_SECONDS),
    });
    // The image's own STATE_DIR (its ENV): the volume is mounted there.
    delete env["EDGE_SIGNIN_STATE_DIR"];
    await docker([
      "run",
      "--detach",
      "--name",
      name,
      ...(platform ? ["--platform", platform] : []),
      ...HARDENED_RUN_FLAGS,
      "--volume",
      `${device.volume}:${STATE_DIR}`,
      "--volume",
      `${bed.idp.caFile}:${CA_IN_CONTAINER}:ro`,
      // The shipped HEALTHCHECK command, checked more often than its 30 s so the test need not wait for it.
      "--health-interval",
      "1s",
      "--health-start-period",
      "2s",
      ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
      image,
    ]);
    return name;
  }

  /** What a failing wait shows: the container's state and the tail of its log. */
  async describeContainer(name: string): Promise<string> {
    const state = await docker(["inspect", "--format", "{{json .State}}", name]).catch(
      (e: Error) => e.message,
    );
    const logs = await docker(["logs", "--tail", "40", name]).catch((e: Error) => ({
      stdout: e.message,
      stderr: "",
    }));
    return `container ${name}: ${typeof state === "string" ? state : state.stdout}\n${logs.stdout}${logs.stderr}`;
  }

  /** The message `probe.next` waits for, or a failure that says what the container was doing. */
  async expectMessage(
    name: string,
    topic: string,
    predicate?: Parameters<MqttProbe["next"]>[1],
  ): ReturnType<MqttProbe["next"]> {
    try {
      return await this.options.probe.next(topic, predicate, this.options.waitMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await this.describeContainer(name)}`, { cause: error });
    }
  }

  /**
   * Polls the engine's view of the container's health until it is `status` and, when `output` is given, its
   * latest check printed that (bounded by `waitMs`, else 30 s).
   */
  async healthBecomes(name: string, status: "healthy" | "unhealthy", output?: RegExp): Promise<Health> {
    const deadline = Date.now() + (this.options.waitMs ?? 30_000);
    for (;;) {
      const health = JSON.parse(
        (await docker(["inspect", "--format", "{{json .State.Health}}", name])).stdout,
      ) as Health;
      if (health.Status === status && (output?.test(health.Log.at(-1)?.Output ?? "") ?? true)) return health;
      if (Date.now() > deadline) {
        throw new Error(
          `health is ${health.Status}, not ${status}${output ? ` with ${String(output)}` : ""}: ` +
            `${JSON.stringify(health.Log.at(-1))}\n` +
            (await this.describeContainer(name)),
        );
      }
      await sleep(250);
    }
  }

  /**
   * `docker stop` with a grace of `stopGraceSeconds` (5 s): a container that is still running then is killed,
   * and exits 137, not 0.
   */
  async stop(name: string): Promise<{ ExitCode: number; OOMKilled: boolean }> {
    const grace = this.options.stopGraceSeconds ?? 5;
    await docker(["stop", "--time", String(grace), name], (grace + 60) * 1000);
    const state = JSON.parse((await docker(["inspect", "--format", "{{json .State}}", name])).stdout) as {
      ExitCode: number;
      OOMKilled: boolean;
    };
    return { ExitCode: state.ExitCode, OOMKilled: state.OOMKilled };
  }
}
