import type { Writable } from "node:stream";
import { DISPLAY_DEFAULTS } from "../config/index.js";
import { listen } from "../util/emitter.js";
import type { DeviceWatcher, DeviceWatcherEvents, WatchedEvent } from "../mqtt/device-watcher.js";
import type { DisplayPayload, StatePayload } from "../mqtt/topics.js";
import { countdownFromReceipt, isPromptCurrent, isPromptSuperseded, whenPromptStale } from "./device-view.js";
import {
  boundedText,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  MAX_URL_CHARS,
  MAX_USER_CODE_CHARS,
  safeLines,
} from "../util/bounded.js";
import { promptQrUrl, qrText } from "../util/qr.js";

export interface TerminalDisplayOptions {
  /**
   * Also print the username (usually the email address) and the ID-token claims of who signed in. Off by
   * default: the terminal may be on a shared screen, and the claims hold personal data.
   */
  readonly showUsername?: boolean;
  /** After this long (ms) without a message from the device, print what to check. Default: DISPLAY_NEVER_HEARD_SECONDS's. */
  readonly neverHeardAfterMs?: number;
}

/**
 * Renders one device's display, state and events as plain lines on a terminal: what a person in front
 * of the TV would see, told as a log so it also reads well when captured.
 */
export class TerminalDisplay {
  private unsubscribe: () => void = () => undefined;
  private showing = false;
  private cancelStale: () => void = () => undefined;
  private heard = false;
  private neverHeard: NodeJS.Timeout | undefined;
  /** The device's latest state: a code issued before it says signed in or out is not shown. */
  private state: StatePayload | null = null;
  /** The last code received, kept so a state that arrives after it can still take it off the screen. */
  private received: DisplayPayload | null = null;

  constructor(
    private readonly watcher: DeviceWatcher,
    private readonly out: Writable,
    private readonly options: TerminalDisplayOptions = {},
  ) {}

  start(): void {
    const heard = () => (this.heard = true);
    this.unsubscribe = listen<DeviceWatcherEvents>(this.watcher, {
      display: (prompt, secondsLeft) => (
        heard(),
        this.renderPrompt(prompt && countdownFromReceipt(prompt, secondsLeft))
      ),
      state: (state) => {
        heard();
        this.state = state;
        this.line(`state: ${describeState(state, this.options.showUsername === true)}`);
        if (this.showing && this.received && isPromptSuperseded(this.received, state))
          this.renderPrompt(null);
      },
      event: (event) => (heard(), this.renderEvent(event)),
      availability: (availability) => (heard(), this.line(`device is ${availability}`)),
      invalid: (topic, problem) => this.line(`ignored a malformed message on ${topic}: ${problem}`),
      subscriptionRefused: ({ filter, reasonCode }) =>
        this.line(
          `the broker refused the subscription to ${filter} (reason code 0x${reasonCode.toString(16)}); trying again`,
        ),
      connection: (connected, protocolVersion) =>
        this.line(
          connected
            ? `connected to the broker${protocolVersion ? ` (MQTT ${protocolVersion === 5 ? "5" : "3.1.1"})` : ""}`
            : "broker not reachable; retrying…",
        ),
    });
    this.neverHeard = setTimeout(() => {
      if (this.heard) return;
      this.line(
        "no word from this device yet: check the device id, that its agent runs, and that the agent and this display use the same broker and topic prefix (and that the broker's ACL lets this display read the topics)",
      );
    }, this.options.neverHeardAfterMs ?? DISPLAY_DEFAULTS.neverHeardAfterMs);
    this.neverHeard.unref();
  }

  stop(): void {
    this.unsubscribe();
    this.cancelStale();
    clearTimeout(this.neverHeard);
  }

  private renderPrompt(received: DisplayPayload | null): void {
    this.cancelStale();
    // A code past its expiry is never shown (a 3.1.1 broker keeps handing out a retained one), and one on screen goes.
    this.received = received;
    const prompt =
      received && isPromptCurrent(received) && !isPromptSuperseded(received, this.state) ? received : null;
    if (prompt) this.cancelStale = whenPromptStale(prompt, () => this.renderPrompt(null));
    if (!prompt) {
      if (this.showing) this.line("display cleared");
      this.showing = false;
      return;
    }
    this.showing = true;
    const seconds = Math.max(0, Math.round((Date.parse(prompt.expiresAt) - Date.now()) / 1000) || 0);
    const expiry = seconds >= 120 ? `about ${Math.round(seconds / 60)} min` : `${seconds} s`;
    const uri = boundedText(prompt.verificationUri, MAX_URL_CHARS);
    // The QR code holds the URL with the code in it when the provider gives one, so a phone needs no typing;
    // none at all when neither URL may be one (not https, or too long): then the address above is the way.
    const qrUrl = promptQrUrl(prompt);
    const qr = qrUrl === undefined ? undefined : qrText(qrUrl);
    this.write(
      [
        "",
        "  ┌──────────────────────────────────────────────",
        `  │  To sign in, open  ${uri}`,
        `  │  and enter the code`,
        `  │`,
        `  │      ${boundedText(prompt.userCode, MAX_USER_CODE_CHARS)}`,
        `  │`,
        `  │  The code expires in ${expiry} (${boundedText(prompt.expiresAt, MAX_FIELD_CHARS)}).`,
        qr === undefined || qrUrl === undefined
          ? `  │  (No QR code for this address: type it in.)`
          : `  │  Or scan the QR code below (it opens ${qrUrl}).`,
        "  └──────────────────────────────────────────────",
        ...(qr?.split("\n").map((row) => `  ${row}`) ?? []),
        "",
      ].join("\n") + "\n",
    );
  }

  private renderEvent(event: WatchedEvent): void {
    if (event.type === "authenticated") {
      const account = event["account"] as { name?: unknown; username?: unknown } | undefined;
      if (!this.options.showUsername) {
        this.line(`event authenticated: signed in as ${shownName(account?.name)}`);
        return;
      }
      this.line(
        `event authenticated: signed in as ${shownName(account?.name)} <${shownName(account?.username)}>`,
      );
      this.write(`  ID-token claims: ${JSON.stringify(event["claims"], null, 2).replace(/\n/g, "\n  ")}\n`);
      return;
    }
    const detail = event.type === "sign_in_failed" ? ` (${shownName(event["reason"])})` : "";
    this.line(`event ${boundedText(event.type, MAX_FIELD_CHARS)}${detail}`);
  }

  private line(text: string): void {
    this.write(`[display] ${boundedText(text, MAX_MESSAGE_CHARS + 100)}\n`);
  }

  /**
   * The only way out to the terminal: whatever came from the broker is printed, never interpreted, so every
   * escape sequence and control character is taken out here.
   */
  private write(text: string): void {
    this.out.write(safeLines(text));
  }
}

function shownName(value: unknown): string {
  return typeof value === "string" && value !== "" ? boundedText(value, MAX_FIELD_CHARS) : "?";
}

function describeState(state: StatePayload, showUsername: boolean): string {
  switch (state.state) {
    case "signed_in": {
      const account = state.account as { name?: unknown; username?: unknown } | undefined;
      const username = typeof account?.username === "string" ? account.username : undefined;
      const name = typeof account?.name === "string" && account.name !== "" ? account.name : undefined;
      return `signed in as ${boundedText(name ?? (showUsername ? username : undefined) ?? "someone", MAX_FIELD_CHARS)}`;
    }
    case "awaiting_user":
      return "waiting for someone to sign in";
    case "error":
      return `error: ${boundedText(String(state.message ?? state.reason ?? "unknown"), MAX_MESSAGE_CHARS)}`;
    default:
      return state.state.replace("_", " ");
  }
}
