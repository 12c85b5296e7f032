import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "../agent.js";
import { loadConfig } from "../config/index.js";
import { TerminalDisplay } from "../display/terminal.js";
import { createLogger } from "../util/logger.js";
import { DeviceWatcher, type WatchedEvent } from "../mqtt/device-watcher.js";
import { deviceTopics, type DisplayPayload } from "../mqtt/topics.js";

export interface DemoOptions {
  /** Sign in as this simulated person as soon as the code is on the display. */
  readonly approveAs?: string;
  /** Have the simulated person decline. */
  readonly decline?: boolean;
}

/** Pause before the simulated person acts, so a watcher sees the code on the display first. */
const READING_TIME_MS = 1_500;
const DEMO_DEADLINE_MS = 60_000;

/**
 * Everything on one machine, nothing to configure: an embedded broker, a real local OpenID provider,
 * the agent, and a terminal display that is a separate MQTT client, exactly like a TV would be.
 * The development parts are imported lazily: they are dev dependencies, absent from a production install.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const out = process.stdout;
  const [{ startEmbeddedBroker }, { startDevIdentityProvider }, person] = await Promise.all([
    import("../dev/embedded-broker.js"),
    import("../dev/identity-provider.js"),
    import("../dev/person.js"),
  ]).catch((error: unknown) => {
    throw new Error(
      `the demo needs the development dependencies (run npm install in a checkout): ${String(error)}`,
    );
  });
  const stateDir = await mkdtemp(join(tmpdir(), "edge-signin-demo-"));
  const broker = await startEmbeddedBroker();
  const idp = await startDevIdentityProvider({ certDir: stateDir });
  const config = loadConfig({
    EDGE_SIGNIN_AUTHORITY: idp.authority,
    EDGE_SIGNIN_CLIENT_ID: idp.clientId,
    EDGE_SIGNIN_DEVICE_ID: "demo-tv",
    EDGE_SIGNIN_MQTT_URL: broker.url,
    // The embedded broker speaks MQTT 3.1.1; with Mosquitto the agent uses MQTT 5.
    EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4",
    EDGE_SIGNIN_STATE_DIR: stateDir,
    // The demo's own token service, never the machine's /run/edge-signin (another agent may hold it).
    EDGE_SIGNIN_TOKEN_SOCKET: join(stateDir, "token.sock"),
    EDGE_SIGNIN_IDP_CA_FILE: idp.caFile,
    // The local provider emulates Entra's dialect, so the demo takes MSAL's own path, as with Entra.
    EDGE_SIGNIN_DEVICE_FLOW_DIALECT: "entra",
    EDGE_SIGNIN_LOG_LEVEL: "warn",
  });
  out.write(
    `edge-signin demo\n  broker:            ${broker.url} (embedded)\n  identity provider: ${idp.authority} (local, oidc-provider)\n  display topic:     ${deviceTopics(config.topicPrefix, config.deviceId).display}\n  token service:     ${config.tokenService?.socketPath ?? "off"} (edge-signin token --socket ...)\n\n`,
  );

  const watcher = new DeviceWatcher(
    { ...config.mqtt, clientId: "demo-display" },
    deviceTopics(config.topicPrefix, config.deviceId),
  );
  // The demo's people are made up, and showing the claims that arrive is what the demo is for.
  const display = new TerminalDisplay(watcher, out, { showUsername: true });
  const agent = new Agent({ config, logger: createLogger("warn", process.stderr) });
  let finished: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finished = resolve));

  let acted = false;
  const act = (prompt: DisplayPayload | null) => {
    if (!prompt || acted || (!options.approveAs && !options.decline)) return;
    acted = true;
    const who = options.approveAs ?? "someone";
    out.write(
      `[person]  ${who} reads the code from the display and ${options.decline ? "declines" : "signs in"} on a phone...\n`,
    );
    setTimeout(() => {
      const journey = options.decline
        ? person.declineSignIn(prompt.verificationUri, prompt.userCode, { ca: idp.caPem })
        : person.approveSignIn(prompt.verificationUri, prompt.userCode, { ca: idp.caPem, login: who });
      journey.catch((error: unknown) => {
        out.write(`[person]  could not complete the journey: ${String(error)}\n`);
        finished(1);
      });
    }, READING_TIME_MS);
  };
  const onEvent = (event: WatchedEvent) => {
    if (event.type === "authenticated" && options.approveAs) finished(0);
    if (event.type === "sign_in_failed" && options.decline) finished(0);
  };
  try {
    // The display listens first, so the code is on screen before the person acts on it.
    display.start();
    watcher.on("display", act);
    watcher.on("event", onEvent);
    await watcher.start();
    await agent.start();
    if (!options.approveAs && !options.decline) {
      out.write(
        `Open the URL shown above in a browser (accept the self-signed certificate), log in with any name.\n` +
          `Or run: npm run demo -- --approve-as alice\nPress Ctrl-C to stop.\n`,
      );
      process.once("SIGINT", () => finished(0));
      process.once("SIGTERM", () => finished(0));
    }
    const deadline = setTimeout(() => {
      out.write("[demo]    nothing happened within a minute; stopping\n");
      finished(1);
    }, DEMO_DEADLINE_MS);
    if (!options.approveAs && !options.decline) clearTimeout(deadline);
    const code = await done;
    clearTimeout(deadline);
    return code;
  } finally {
    await agent.stop();
    // Let the display print the agent's last words (display cleared, offline) before it goes.
    await new Promise((resolve) => setTimeout(resolve, 200));
    display.stop();
    await watcher.stop();
    await Promise.all([idp.close(), broker.close()]);
    await rm(stateDir, { recursive: true, force: true });
  }
}
