#!/usr/bin/env node
import { Command, Option } from "commander";
import { ENV_PREFIX, SETTINGS } from "./config/index.js";
import { reportFailure } from "./cli/report-failure.js";
import { guardAgainstStall } from "./cli/stall-guard.js";
import { packageVersion } from "./util/version.js";

/**
 * The process shell: parses the command line, runs one command, and is the only place that exits.
 * Commands are imported lazily so `agent` does not pay for the demo's identity provider and vice versa.
 */
function settingsHelp(): string {
  const lines = SETTINGS.map(
    (s) => `  ${(ENV_PREFIX + s.name).padEnd(38)} ${s.default ? `(default ${s.default})` : ""}`,
  );
  return `\nConfiguration (environment variables; secrets also accept NAME_FILE):\n${lines.join("\n")}\n`;
}

const program = new Command("edge-signin")
  .description("Sign a person in on a keyboard-less device: the device code is shown on an MQTT display.")
  .version(packageVersion())
  .showHelpAfterError();

program
  .command("agent")
  .description(
    "Run the agent: connect to the broker, show a code on the display topic, publish who signed in.",
  )
  .addHelpText("after", settingsHelp())
  .action(async () => {
    const { runAgent } = await import("./cli/agent.js");
    process.exitCode = await runAgent();
  });

program
  .command("demo")
  .description(
    "Show the whole story on one machine with no configuration: embedded broker, local identity provider, agent and a terminal display.",
  )
  .addOption(
    new Option("--approve-as <name>", "sign in as this simulated person as soon as the code is shown"),
  )
  .addOption(new Option("--decline", "have the simulated person decline instead").conflicts("approveAs"))
  .action(async (options: { approveAs?: string; decline?: boolean }) => {
    const { runDemo } = await import("./cli/demo.js");
    process.exitCode = await runDemo(options);
  });

program
  .command("display")
  .description(
    "Show a device's sign-in screen (code, URL, QR code, state): on this terminal, or with --web as a page for a TV.",
  )
  .addOption(
    new Option(
      "--device <id>",
      "device to show (repeatable; default $EDGE_SIGNIN_DISPLAY_DEVICES)",
    ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
  )
  .addOption(
    new Option(
      "--web",
      "serve the page at http://$EDGE_SIGNIN_DISPLAY_HOST:$EDGE_SIGNIN_DISPLAY_PORT/devices/{id} instead",
    ),
  )
  .action(async (options: { device?: string[]; web?: boolean }) => {
    const { runDisplay } = await import("./cli/display.js");
    process.exitCode = await runDisplay(options);
  });

program
  .command("fleet")
  .description(
    "List every device seen on the broker: availability, state, since when, last sign-in, and counts by state (as the read-only fleet user).",
  )
  .addOption(
    new Option("--once", "print the current view once the retained messages have arrived, then exit"),
  )
  .addOption(new Option("--json", "print JSON instead of a table"))
  .addOption(
    new Option(
      "--web",
      "serve the view at http://$EDGE_SIGNIN_DISPLAY_HOST:$EDGE_SIGNIN_DISPLAY_PORT/fleet (and /fleet.json) instead",
    ),
  )
  .action(async (options: { once?: boolean; json?: boolean; web?: boolean }) => {
    const { runFleet } = await import("./cli/fleet.js");
    process.exitCode = await runFleet(options);
  });

program
  .command("health")
  .description(
    "Check a running agent through STATE_DIR/health.json (for a container HEALTHCHECK): exit 0 when healthy, 1 when not.",
  )
  .addOption(new Option("--file <path>", "health file to read instead of $EDGE_SIGNIN_STATE_DIR/health.json"))
  .action(async (options: { file?: string }) => {
    const { runHealth } = await import("./cli/health.js");
    process.exitCode = await runHealth(options);
  });

program
  .command("token")
  .description(
    "Print an access token for the person signed in on this device, from the running agent's token service (as an app gets one).",
  )
  .addOption(
    new Option(
      "--scope <scope>",
      "a scope the token is for (repeatable; default: the sign-in's own)",
    ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
  )
  .addOption(
    new Option("--json", "print the whole answer as JSON (accessToken, tokenType, expiresOn, scopes)"),
  )
  .addOption(
    new Option(
      "--socket <path>",
      "the token service's socket (default $EDGE_SIGNIN_TOKEN_SOCKET, else /run/edge-signin/token.sock)",
    ),
  )
  .action(async (options: { scope?: string[]; json?: boolean; socket?: string }) => {
    const { runToken } = await import("./cli/token.js");
    process.exitCode = await runToken(options);
  });

const disarm = guardAgainstStall();
try {
  await program.parseAsync();
} catch (error) {
  process.exitCode = reportFailure(error);
}
disarm();
// MSAL's polling timer may still be pending after a cancel; the work is done, so leave now.
process.exit();
