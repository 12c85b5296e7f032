import type { Writable } from "node:stream";
import { listen } from "../listen.js";
import type { DeviceWatcher, DeviceWatcherEvents, WatchedEvent } from "../mqtt/device-watcher.js";
import type { DisplayPayload, StatePayload } from "../mqtt/topics.js";
import { countdownFromReceipt, isPromptCurrent, whenPromptStale } from "./device-view.js";
import { qrText } from "./qr.js";

/**
 * Renders one device's display, state and events as plain lines on a terminal: what a person in front
 * of the TV would see, told as a log so it also reads well when captured.
 */
export class TerminalDisplay {
  private unsubscribe: () => void = () => undefined;
  private showing = false;
  private cancelStale: () => void = () => undefined;

  constructor(
    private readonly watcher: DeviceWatcher,
    private readonly out: Writable,
  ) {}

  start(): void {
    this.unsubscribe = listen<DeviceWatcherEvents>(this.watcher, {
      display: (prompt, secondsLeft) =>
        this.renderPrompt(prompt && countdownFromReceipt(prompt, secondsLeft)),
      state: (state) => this.line(`state: ${describeState(state)}`),
      event: (event) => this.renderEvent(event),
      availability: (availability) => this.line(`device is ${availability}`),
      invalid: (topic, problem) => this.line(`ignored a malformed message on ${topic}: ${problem}`),
      connection: (connected, protocolVersion) =>
        this.line(
          connected
            ? `connected to the broker${protocolVersion ? ` (MQTT ${protocolVersion === 5 ? "5" : "3.1.1"})` : ""}`
            : "broker not reachable; retrying…",
        ),
    });
  }

  stop(): void {
    this.unsubscribe();
    this.cancelStale();
  }

  private renderPrompt(received: DisplayPayload | null): void {
    this.cancelStale();
    // A code past its expiry is never shown (a 3.1.1 broker keeps handing out a retained one), and one on screen goes.
    const prompt = received && isPromptCurrent(received) ? received : null;
    if (prompt) this.cancelStale = whenPromptStale(prompt, () => this.renderPrompt(null));
    if (!prompt) {
      if (this.showing) this.line("display cleared");
      this.showing = false;
      return;
    }
    this.showing = true;
    const seconds = Math.max(0, Math.round((Date.parse(prompt.expiresAt) - Date.now()) / 1000));
    const expiry = seconds >= 120 ? `about ${Math.round(seconds / 60)} min` : `${seconds} s`;
    // The QR code holds the URL with the code in it when the provider gives one, so a phone needs no typing.
    const qrUrl = prompt.verificationUriComplete ?? prompt.verificationUri;
    const qr = qrText(qrUrl)
      .split("\n")
      .map((row) => `  ${row}`);
    this.out.write(
      [
        "",
        "  ┌──────────────────────────────────────────────",
        `  │  To sign in, open  ${prompt.verificationUri}`,
        `  │  and enter the code`,
        `  │`,
        `  │      ${prompt.userCode}`,
        `  │`,
        `  │  The code expires in ${expiry} (${prompt.expiresAt}).`,
        `  │  Or scan the QR code below (it opens ${qrUrl}).`,
        "  └──────────────────────────────────────────────",
        ...qr,
        "",
      ].join("\n") + "\n",
    );
  }

  private renderEvent(event: WatchedEvent): void {
    if (event.type === "authenticated") {
      const account = event["account"] as { name?: string; username?: string } | undefined;
      this.line(`event authenticated: signed in as ${account?.name ?? "?"} <${account?.username ?? "?"}>`);
      this.out.write(
        `  ID-token claims: ${JSON.stringify(event["claims"], null, 2).replace(/\n/g, "\n  ")}\n`,
      );
      return;
    }
    const detail = event.type === "sign_in_failed" ? ` (${String(event["reason"])})` : "";
    this.line(`event ${event.type}${detail}`);
  }

  private line(text: string): void {
    this.out.write(`[display] ${text}\n`);
  }
}

function describeState(state: StatePayload): string {
  switch (state.state) {
    case "signed_in":
      return `signed in as ${state.account?.name ?? state.account?.username ?? "someone"}`;
    case "awaiting_user":
      return "waiting for someone to sign in";
    case "error":
      return `error: ${state.message ?? state.reason ?? "unknown"}`;
    default:
      return state.state.replace("_", " ");
  }
}
