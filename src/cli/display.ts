import { ConfigError, loadDisplayConfig, unknownSettingsWarning } from "../config/index.js";
import { TerminalDisplay } from "../display/terminal.js";
import { startWebDisplay } from "../display/web-display.js";
import { createLogger } from "../util/logger.js";
import { DeviceWatcher } from "../mqtt/device-watcher.js";
import { deviceTopics } from "../mqtt/topics.js";
import type { Locale } from "../i18n/catalogue.js";
import { matchLocale } from "../i18n/translate.js";

export interface DisplayOptions {
  /** Serve the TV page over HTTP instead of drawing on this terminal. */
  readonly web?: boolean;
  /** Device ids from `--device`; they replace `EDGE_SIGNIN_DISPLAY_DEVICES`. */
  readonly device?: readonly string[];
}

/**
 * `edge-signin display`: a read-only MQTT client that shows a device's sign-in screen, on this terminal or as
 * a web page for a TV. Runs until SIGTERM or SIGINT; resolves with the exit code.
 */
export async function runDisplay(options: DisplayOptions, env = process.env): Promise<number> {
  const config = loadDisplayConfig(env, options.device ?? []);
  const unknown = unknownSettingsWarning(env);
  const signalled = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });

  if (options.web) {
    const log = createLogger(config.logLevel);
    if (unknown) log.warn(unknown);
    const display = await startWebDisplay(config, log);
    try {
      const refused = await Promise.race([display.refused, signalled.then(() => undefined)]);
      if (refused) throw refused;
      return 0;
    } finally {
      await display.stop();
    }
  }

  const [deviceId, ...more] = config.deviceIds;
  if (deviceId === undefined || more.length > 0) {
    throw new ConfigError([
      `--device: the terminal display shows one device (got ${config.deviceIds.join(", ")}); use --web for several`,
    ]);
  }
  if (unknown) process.stderr.write(`edge-signin: ${unknown}\n`);
  const watcher = new DeviceWatcher(config.mqtt, deviceTopics(config.topicPrefix, deviceId));
  // The display owns stdout and says itself when a message is malformed; logs would only clutter the screen.
  const display = new TerminalDisplay(watcher, process.stdout, {
    locale: terminalLocale(config.language, process.env),
    showUsername: config.showUsername,
    neverHeardAfterMs: config.neverHeardAfterMs,
  });
  display.start();
  // A refusal after the first connection ends the display like one at the start: one line, exit code (README).
  const refusedLater = new Promise<never>((_, reject) => watcher.once("refused", reject));
  refusedLater.catch(() => undefined);
  try {
    await Promise.race([watcher.start(), signalled, refusedLater]);
    await Promise.race([signalled, refusedLater]);
    return 0;
  } finally {
    display.stop();
    await watcher.stop();
  }
}

/** `DISPLAY_LANGUAGE`, or with `auto` the terminal's own (LC_ALL, LC_MESSAGES, LANG: `de_DE.UTF-8`); else English. */
export function terminalLocale(language: string, env: NodeJS.ProcessEnv): Locale {
  if (language !== "auto") return matchLocale(language) ?? "en";
  const posix = env["LC_ALL"] || env["LC_MESSAGES"] || env["LANG"] || "";
  const tag = posix.split(".")[0]?.split("@")[0]?.replace("_", "-") ?? "";
  return (tag && tag !== "C" && tag !== "POSIX" ? matchLocale(tag) : undefined) ?? "en";
}
