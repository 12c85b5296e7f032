/**
 * Figures 1-3: cold start to the code on the display, memory while waiting for the person, and approval to
 * event. Each round runs every side once, in the same order (A B A B ...), so a busy moment on the shared
 * machine hits all sides of a round alike.
 */
import { copyFile, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { METADATA_FILE } from "../src/auth/discovery.js";
import type { Bed } from "./lib/bed.js";
import { TOPIC_PREFIX } from "./lib/bed.js";
import { rssMiB, spawnNode, within, type Spawned } from "./lib/proc.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BASELINE_SCRIPT = join(ROOT, "bench", "baseline.mjs");
export const BUNDLE_ENTRY = join(ROOT, "dist", "bundle", "edge-signin.mjs");
export const UNBUNDLED_ENTRY = join(ROOT, "dist", "src", "main.js");

/**
 * What a reboot finds in STATE_DIR from the previous start: the provider's discovery document
 * (src/auth/discovery.ts). The V8 code cache is not in STATE_DIR: it ships beside the bundle (src/cli/code-cache.ts).
 */
const REBOOT_FILES = [METADATA_FILE];

export type SideName = "agent" | "baseline" | "agent-first-boot" | "agent-unbundled" | "agent-before";

export interface Side {
  readonly name: SideName;
  readonly description: string;
}

export const SIDES: Record<SideName, Side> = {
  agent: {
    name: "agent",
    description:
      "edge-signin as `npm start` and the container run it (launcher + agent bundle), with the discovery metadata an earlier start left in STATE_DIR (a reboot) and the code cache shipped beside the bundle",
  },
  baseline: {
    name: "baseline",
    description: "bench/baseline.mjs: the plain MSAL Node device-code sample, message printed to stdout",
  },
  "agent-first-boot": {
    name: "agent-first-boot",
    description: "the same with an empty STATE_DIR (first boot: discovery over the network)",
  },
  "agent-before": {
    name: "agent-before",
    description:
      "the `agent` side built from an earlier commit (`--before REF`): the same start path before a change, in the same rounds",
  },
  "agent-unbundled": {
    name: "agent-unbundled",
    description: "edge-signin compiled by tsc, loaded module by module from node_modules (no bundle)",
  },
};

/** One run of one side. */
export interface ColdRun {
  readonly side: SideName;
  readonly round: number;
  /** Spawn to the code at the subscriber (agent) or on stdout (baseline), ms. */
  readonly codeMs: number;
  /** VmRSS after the code was shown and the settle time passed, MiB. */
  readonly rssMiB: number;
  /** Successful token response sent by the provider to the event at the subscriber (or stdout), ms. */
  readonly tokenToEventMs: number;
  /** The approval stored at the provider (the person finished) to the event, ms. */
  readonly approvalToEventMs: number;
}

export interface ColdStartOptions {
  readonly rounds: number;
  readonly sides: readonly SideName[];
  readonly settleMs: number;
  /** The bundle's entry point; by default dist/bundle/edge-signin.mjs, what `npm start` runs. */
  readonly bundleEntry?: string;
  /** The bundle's entry point built from `--before REF`, for the `agent-before` side. */
  readonly beforeEntry?: string;
  /** Node options for the agent's process (experiments with V8 flags); none by default. */
  readonly agentNodeArgs?: readonly string[];
}

export async function runColdStart(
  bed: Bed,
  options: ColdStartOptions,
  progress: (line: string) => void,
): Promise<ColdRun[]> {
  // The first agent run (warm-up round) fills this with the provider's metadata.
  const warmStateDir = await mkdtemp(join(bed.scratch, "state-warm-"));
  const runs: ColdRun[] = [];
  // Round 0 warms the page cache and the agent's metadata cache; it is not reported.
  for (let round = 0; round <= options.rounds; round++) {
    for (const side of options.sides) {
      const run = await runOnce(bed, side, round, warmStateDir, options);
      if (round > 0) runs.push(run);
    }
    if (round > 0) progress(`cold start round ${round}/${options.rounds}`);
  }
  return runs;
}

async function runOnce(
  bed: Bed,
  side: SideName,
  round: number,
  warmStateDir: string,
  options: ColdStartOptions,
): Promise<ColdRun> {
  // The warm-up run of "agent" writes the metadata cache that later agent runs start from.
  if (round === 0 && side === "agent") return runIn(bed, side, round, warmStateDir, options);
  const stateDir = await mkdtemp(join(bed.scratch, `state-${side}-`));
  // A reboot: the provider's metadata and the code cache are there from an earlier start, but nobody is signed
  // in (a cached session would skip the code altogether, which is not what this figure is about).
  if (side !== "agent-first-boot")
    for (const file of REBOOT_FILES)
      await copyFile(join(warmStateDir, file), join(stateDir, file)).catch(() => undefined);
  return runIn(bed, side, round, stateDir, options);
}

async function runIn(
  bed: Bed,
  side: SideName,
  round: number,
  stateDir: string,
  options: ColdStartOptions,
): Promise<ColdRun> {
  const deviceId = `cold-${side}-${round}-${Date.now().toString(36)}`;
  const isAgent = side !== "baseline";
  const proc = isAgent
    ? spawnNode(
        [
          ...(options.agentNodeArgs ?? []),
          side === "agent-unbundled"
            ? UNBUNDLED_ENTRY
            : side === "agent-before"
              ? (options.beforeEntry ?? BUNDLE_ENTRY)
              : (options.bundleEntry ?? BUNDLE_ENTRY),
          "agent",
        ],
        agentEnv(bed, deviceId, stateDir),
      )
    : spawnNode([BASELINE_SCRIPT], baselineEnv(bed));
  try {
    let codeAt: number;
    let userCode: string;
    if (isAgent) {
      const display = await within(bed.watcher.next("display", deviceId), 60_000, `${side} display`);
      codeAt = display.at;
      userCode = String(display.payload["userCode"]);
    } else {
      codeAt = await within(proc.line(/enter the code \S+/), 60_000, "baseline message");
      userCode = /enter the code (\S+)/.exec(proc.output())?.[1] ?? "";
    }
    const codeMs = codeAt - proc.spawnedAt;
    await sleep(options.settleMs);
    const rss = rssMiB(proc.child.pid as number);

    // The person finishes at a random moment of the polling cycle, as a real one would.
    await sleep(Math.random() * bed.pollIntervalMs);
    const tokenSent = nextDeviceCodeToken(bed);
    await bed.idp.approve(userCode, "alice");
    const approvedAt = performance.now();
    const eventAt = isAgent
      ? (await within(bed.watcher.next("authenticated", deviceId), 30_000, `${side} authenticated`)).at
      : await within(proc.line(/Signed in as/), 30_000, "baseline result");
    const sentAt = await within(tokenSent, 5_000, "the provider's token response");
    // The warm-up start lives on a moment after its sign-in, as a device does, so the code cache it leaves
    // for the reboots covers the approval path too (src/cli/agent.ts writes it a second after).
    if (round === 0 && isAgent) await sleep(2_000);
    return {
      side,
      round,
      codeMs,
      rssMiB: rss,
      tokenToEventMs: eventAt - sentAt,
      approvalToEventMs: eventAt - approvedAt,
    };
  } catch (error) {
    throw new Error(`${side} run ${round} failed: ${String(error)}\n${proc.output().slice(-3000)}`, {
      cause: error,
    });
  } finally {
    await stopQuietly(proc);
  }
}

function nextDeviceCodeToken(bed: Bed): Promise<number> {
  return new Promise((resolve) => {
    const off = bed.idp.onTokenResponse((info) => {
      // MSAL posts Entra's short grant type; an RFC 8628 client the URN.
      if (info.status === 200 && info.grantType.endsWith("device_code")) {
        off();
        resolve(info.sentAt);
      }
    });
  });
}

async function stopQuietly(proc: Spawned): Promise<void> {
  await proc.stop().catch(() => undefined);
}

export function agentEnv(bed: Bed, deviceId: string, stateDir: string): Record<string, string> {
  return {
    EDGE_SIGNIN_AUTHORITY: bed.idp.authority,
    EDGE_SIGNIN_CLIENT_ID: bed.idp.clientId,
    EDGE_SIGNIN_DEVICE_ID: deviceId,
    EDGE_SIGNIN_TOPIC_PREFIX: TOPIC_PREFIX,
    EDGE_SIGNIN_MQTT_URL: bed.broker.url,
    EDGE_SIGNIN_STATE_DIR: stateDir,
    // The same trust mechanism as the baseline: Node's own, read at process start.
    NODE_EXTRA_CA_CERTS: bed.idp.caFile,
  };
}

function baselineEnv(bed: Bed): Record<string, string> {
  const port = new URL(bed.idp.authority).port;
  return {
    BASELINE_AUTHORITY: bed.idp.authority,
    BASELINE_CLIENT_ID: bed.idp.clientId,
    BASELINE_KNOWN_AUTHORITIES: `localhost:${port},127.0.0.1:${port}`,
    NODE_EXTRA_CA_CERTS: bed.idp.caFile,
  };
}
