import { pino } from "pino";
import { loadFleetConfig, unknownSettingsWarning } from "../config/index.js";
import { Fleet, renderFleetTable } from "../fleet/fleet.js";
import { FleetServer } from "../fleet/fleet-server.js";
import { createLogger } from "../util/logger.js";
import { FleetWatcher } from "../mqtt/fleet-watcher.js";

export interface FleetOptions {
  /** Print the view once the retained messages have arrived, then exit 0 (for scripts). */
  readonly once?: boolean;
  /** JSON (FleetSnapshot) instead of a table. */
  readonly json?: boolean;
  /** Serve the view as a page (`/fleet`, `/fleet.json`) at DISPLAY_HOST:DISPLAY_PORT instead of printing it. */
  readonly web?: boolean;
}

/** `--once`: the retained messages follow the SUBACK at once; the view is complete when they pause this long. */
const SETTLE_MS = 500;
/** `--once` prints what it has after this long even on a fleet whose messages never pause. */
const SETTLE_LIMIT_MS = 15_000;
/** `--once` gives up (exit code 1) when no broker lets it subscribe within this long. */
const ONCE_CONNECT_MS = 30_000;
/** Redraw at most this often while following. */
const REDRAW_MS = 250;

/**
 * `edge-signin fleet`: every device seen on the broker with its availability, state, since when and last sign-in,
 * with counts by state. Reads only `{prefix}/+/availability` and `{prefix}/+/state` (the `fleet` broker user).
 * Follows changes until SIGTERM or SIGINT, or with `once` prints one view and exits. Resolves with the exit code.
 */
export async function runFleet(options: FleetOptions, env = process.env): Promise<number> {
  const config = loadFleetConfig(env);
  // stdout carries the view; log lines go to stderr.
  const log = createLogger(config.logLevel, pino.destination({ dest: 2, sync: true })).child({
    module: "fleet",
  });
  const unknown = unknownSettingsWarning(env);
  if (unknown) log.warn(unknown);
  const fleet = new Fleet();
  const watcher = new FleetWatcher(config.mqtt, config.topicPrefix);
  let lastMessage = Date.now();
  let redraw: NodeJS.Timeout | undefined;
  let server: FleetServer | undefined;
  const print = () => {
    const snapshot = fleet.snapshot();
    const text = options.json ? `${JSON.stringify(snapshot)}\n` : renderFleetTable(snapshot);
    // A terminal gets the table redrawn in place; a pipe gets one view after another.
    process.stdout.write(
      !options.once && !options.json && process.stdout.isTTY ? `\x1b[H\x1b[2J${text}` : text,
    );
  };
  const changed = () => {
    lastMessage = Date.now();
    if (options.once || options.web || redraw) return;
    redraw = setTimeout(() => {
      redraw = undefined;
      print();
    }, REDRAW_MS);
  };
  watcher.on("availability", (id, availability) => {
    fleet.availability(id, availability);
    changed();
  });
  watcher.on("state", (id, state) => {
    fleet.state(id, state);
    changed();
  });
  watcher.on("invalid", (topic, problem) => log.warn({ topic, problem }, "ignored a malformed message"));
  watcher.on("conflict", (message) => log.warn(message));
  watcher.on("connection", (connected) =>
    log.info(connected ? "connected to broker" : "broker connection lost"),
  );

  const signalled = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  const refusedLater = new Promise<never>((_, reject) => watcher.once("refused", reject));
  refusedLater.catch(() => undefined);
  try {
    if (options.once) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `fleet --once: no broker at the MQTT URL let us subscribe within ${ONCE_CONNECT_MS / 1000} s`,
              ),
            ),
          ONCE_CONNECT_MS,
        );
      });
      await Promise.race([watcher.start(), refusedLater, late]).finally(() => clearTimeout(timer));
      const subscribed = Date.now();
      lastMessage = subscribed;
      while (Date.now() - lastMessage < SETTLE_MS && Date.now() - subscribed < SETTLE_LIMIT_MS)
        await new Promise((resolve) => setTimeout(resolve, 50));
      print();
      return 0;
    }
    if (options.web) {
      server = new FleetServer({ ...config.web, snapshot: () => fleet.snapshot(), logger: log });
      await server.start();
    }
    await Promise.race([watcher.start(), signalled, refusedLater]);
    if (!options.web) print();
    await Promise.race([signalled, refusedLater]);
    return 0;
  } finally {
    clearTimeout(redraw);
    await server?.stop();
    await watcher.stop();
  }
}
