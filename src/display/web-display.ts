import type { Logger } from "pino";
import type { DisplayConfig } from "../config/index.js";
import { DeviceWatcher } from "../mqtt/device-watcher.js";
import { deviceTopics } from "../mqtt/topics.js";
import { DeviceView } from "./device-view.js";
import { WebDisplayServer } from "./web-server.js";

export interface RunningWebDisplay {
  /** `http://host:port`; each device's page is at `{url}/devices/{id}`. */
  readonly url: string;
  /** Resolves (never rejects) if the broker refuses a watcher for good: bad credentials, not authorised. */
  readonly refused: Promise<Error>;
  stop(): Promise<void>;
}

/**
 * The web display, wired: one read-only MQTT watcher and view per device, one HTTP server for all of them.
 * The server listens before the broker is reached, so a TV shows "reconnecting" rather than an error page
 * while the broker is still starting.
 */
export async function startWebDisplay(config: DisplayConfig, logger: Logger): Promise<RunningWebDisplay> {
  const log = logger.child({ module: "web-display" });
  const views = new Map<string, DeviceView>();
  const watchers: DeviceWatcher[] = [];
  for (const id of config.deviceIds) {
    // Several devices share one client id prefix; the watcher adds a random suffix, this keeps them apart in logs.
    const mqtt =
      config.deviceIds.length > 1
        ? { ...config.mqtt, clientId: `${config.mqtt.clientId}-${id}` }
        : config.mqtt;
    const watcher = new DeviceWatcher(mqtt, deviceTopics(config.topicPrefix, id));
    watcher.on("invalid", (topic, problem) => log.warn({ topic, problem }, "ignored a malformed message"));
    watcher.on("conflict", (message) => log.warn(message));
    watcher.on("subscriptionRefused", ({ filter, reasonCode, retryInMs }) =>
      log.warn({ filter, reasonCode, retryInMs }, "the broker refused a subscription; trying again"),
    );
    watcher.on("connection", (connected, protocolVersion) =>
      log.info(
        { deviceId: id, connected, ...(protocolVersion ? { protocolVersion } : {}) },
        connected ? "broker connected" : "broker not reachable; retrying",
      ),
    );
    const view = new DeviceView(id, watcher, {
      signedInNameMs: config.signedInNameMs,
      showUsername: config.showUsername,
    });
    view.start();
    views.set(id, view);
    watchers.push(watcher);
  }
  const server = new WebDisplayServer({
    host: config.host,
    port: config.port,
    views,
    logger,
    allowedHosts: config.allowedHosts,
    presentation: {
      language: config.language,
      ...(config.productName !== undefined ? { productName: config.productName } : {}),
      ...(config.shortUrl !== undefined ? { shortUrl: config.shortUrl } : {}),
      ...(config.logo !== undefined ? { logo: config.logo } : {}),
      neverHeardAfterMs: config.neverHeardAfterMs,
      theme: config.colors,
    },
  });
  // A typo in the device id, an agent that never started or a broker ACL that hides the topics all look like
  // "about to show a code": after a while, say so once in the log (the page says it on screen).
  const neverHeard = setTimeout(() => {
    for (const [id, view] of views) {
      const { availability, state, prompt, brokerConnected } = view.snapshot();
      if (!brokerConnected || availability !== "unknown" || state !== null || prompt !== null) continue;
      log.warn(
        {
          deviceId: id,
          topics: deviceTopics(config.topicPrefix, id).base,
          seconds: config.neverHeardAfterMs / 1000,
        },
        "no word from this device yet: check the device id, that its agent runs, and that the agent and this display use the same broker and topic prefix (and that the broker's ACL lets this display read the topics)",
      );
    }
  }, config.neverHeardAfterMs);
  neverHeard.unref();
  const stop = async () => {
    clearTimeout(neverHeard);
    await server.stop();
    for (const view of views.values()) view.stop();
    await Promise.all(watchers.map((watcher) => watcher.stop()));
  };
  try {
    await server.start();
  } catch (error) {
    await stop();
    throw error;
  }
  // Watchers connect in the background (the page already says "reconnecting"); start() rejects only when
  // the broker refuses the credentials, which the caller decides about.
  const refused = new Promise<Error>((resolve) => {
    for (const watcher of watchers) {
      watcher.once("refused", resolve);
      watcher
        .start()
        .catch((error: unknown) => resolve(error instanceof Error ? error : new Error(String(error))));
    }
  });
  return { url: server.url, refused, stop };
}
