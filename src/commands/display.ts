import { loadDisplayConfig, ConfigError, type DisplayConfig } from "../config.js";
import { DeviceView } from "../display/device-view.js";
import { TerminalDisplay } from "../display/terminal.js";
import { WebDisplayServer } from "../display/web-server.js";
import { createLogger } from "../logger.js";
import { DeviceWatcher } from "../mqtt/device-watcher.js";
import { deviceTopics } from "../mqtt/topics.js";

export interface DisplayOptions {
  /** Serve the TV page over HTTP instead of drawing on this terminal. */
  readonly web?: boolean;
  /** Device ids from `--device`; they replace `EDGE_SIGNIN_DISPLAY_DEVICES`. */
  readonly device?: readonly string[];
}

/**
 * `edge-signin display`: a read-only MQTT client per device that shows the device's sign-in screen, on this
 * terminal or as a web page for a TV. Runs until SIGTERM or SIGINT; resolves with the exit code.
 */
export async function runDisplay(options: DisplayOptions, env = process.env): Promise<number> {
  const config = loadDisplayConfig(env, options.device ?? []);
  if (!options.web && config.deviceIds.length > 1) {
    throw new ConfigError([
      `--device: the terminal display shows one device (got ${config.deviceIds.join(", ")}); use --web for several`,
    ]);
  }
  // The terminal display owns stdout; its logs go to stderr so the screen stays readable.
  const log = createLogger(config.logLevel, options.web ? undefined : process.stderr);
  const watchers = config.deviceIds.map(
    (id) => new DeviceWatcher(watcherMqtt(config, id), deviceTopics(config.topicPrefix, id)),
  );
  for (const watcher of watchers) {
    watcher.on("invalid", (topic, problem) => log.warn({ topic, problem }, "ignored a malformed message"));
    watcher.on("connection", (connected) =>
      log.info({ connected }, connected ? "broker connected" : "broker connection lost; reconnecting"),
    );
  }

  const stops: Array<() => Promise<void> | void> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  };
  const signalled = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  try {
    if (options.web) {
      const views = new Map(
        config.deviceIds.map((id, i) => [id, new DeviceView(id, watchers[i] as DeviceWatcher)]),
      );
      for (const view of views.values()) {
        view.start();
        stops.push(() => view.stop());
      }
      const server = new WebDisplayServer({ host: config.host, port: config.port, views, logger: log });
      // The page is up before the broker is: a TV then says "reconnecting" instead of showing nothing.
      await server.start();
      stops.push(() => server.stop());
    } else {
      const display = new TerminalDisplay(watchers[0] as DeviceWatcher, process.stdout);
      display.start();
      stops.push(() => display.stop());
    }
    for (const watcher of watchers) {
      stops.push(() => watcher.stop());
      await Promise.race([watcher.start(), signalled]);
    }
    await signalled;
    return 0;
  } finally {
    await stopAll();
  }
}

function watcherMqtt(config: DisplayConfig, deviceId: string): DisplayConfig["mqtt"] {
  return config.deviceIds.length > 1
    ? { ...config.mqtt, clientId: `${config.mqtt.clientId}-${deviceId}` }
    : config.mqtt;
}
