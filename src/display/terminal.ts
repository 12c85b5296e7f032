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
import type { Locale, MessageId } from "../i18n/catalogue.js";
import { translate } from "../i18n/translate.js";
import { promptLines, wrapWords, type TerminalSize } from "./terminal-layout.js";

export interface TerminalDisplayOptions {
  /**
   * Also print the username (usually the email address) and the ID-token claims of who signed in. Off by
   * default: the terminal may be on a shared screen, and the claims hold personal data.
   */
  readonly showUsername?: boolean;
  /** After this long (ms) without a message from the device, print what to check. Default: DISPLAY_NEVER_HEARD_SECONDS's. */
  readonly neverHeardAfterMs?: number;
  /** The language of what a person reads (the code screen, the state); English by default. */
  readonly locale?: Locale;
  /** The terminal's size; default: the output's own when it is a terminal, else 80 columns and no row limit. */
  readonly size?: () => TerminalSize;
}

/** The plain words for why a sign-in failed, as the web display says them. */
const FAILURE_WORDS: Readonly<Record<string, MessageId>> = {
  network: "errorNetwork",
  server: "errorServer",
  declined: "errorDeclined",
  invalid_token: "errorInvalid",
};

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
        // While the code is up, it says what "awaiting_user" would: no line to push it up the screen.
        if (state.state !== "awaiting_user" || !this.showing)
          this.line(describeState(state, this.options.showUsername === true, this.t));
        if (this.showing && this.received && isPromptSuperseded(this.received, state))
          this.renderPrompt(null);
      },
      event: (event) => (heard(), this.renderEvent(event)),
      availability: (availability) => (
        heard(),
        this.line(availability === "offline" ? this.t("offlineHeadline") : `device is ${availability}`)
      ),
      invalid: (topic, problem) => this.line(`ignored a malformed message on ${topic}: ${problem}`),
      conflict: (message) => this.line(message),
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
    // The QR code holds the URL with the code in it when the provider gives one, so a phone needs no typing;
    // none at all when neither URL may be one (not https, or too long): then the address is the way.
    const qrUrl = promptQrUrl(prompt);
    const lines = promptLines(
      {
        userCode: boundedText(prompt.userCode, MAX_USER_CODE_CHARS),
        shownUrl: boundedText(prompt.verificationUri, MAX_URL_CHARS),
        qrUrl,
        qr: qrUrl === undefined ? undefined : qrText(qrUrl),
        qrHasCode: qrUrl !== undefined && qrUrl !== prompt.verificationUri,
        secondsLeft: seconds,
        expiresAt: prompt.expiresAt,
      },
      this.size(),
      this.options.locale ?? "en",
    );
    this.write(`${lines.join("\n")}\n`);
  }

  private size(): TerminalSize {
    if (this.options.size) return this.options.size();
    const tty = this.out as Writable & { isTTY?: boolean; columns?: number; rows?: number };
    return tty.isTTY === true && tty.columns && tty.rows
      ? { columns: tty.columns, rows: tty.rows }
      : { columns: 80, rows: Number.POSITIVE_INFINITY };
  }

  private readonly t = (id: MessageId, values?: Record<string, string | number>) =>
    translate(this.options.locale ?? "en", id, values);

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
    if (event.type === "sign_in_failed") {
      // Network and server trouble is the error state's to say (once); a declined or refused sign-in has none.
      const words = FAILURE_WORDS[String(event["reason"])];
      if (words && event["reason"] !== "network" && event["reason"] !== "server") this.line(this.t(words));
      return;
    }
    if (event.type === "code_expired") {
      this.line(this.t("expiredHeadline"));
      return;
    }
    this.line(`event ${boundedText(event.type, MAX_FIELD_CHARS)}`);
  }

  private line(text: string): void {
    const line = `[display] ${boundedText(text, MAX_MESSAGE_CHARS + 100)}`;
    const size = this.size();
    // On a terminal, broken between words rather than wherever the terminal's edge falls; a log keeps one line.
    const lines = Number.isFinite(size.rows)
      ? wrapWords(line, size.columns, this.options.locale ?? "en")
      : [line];
    this.write(`${lines.join("\n")}\n`);
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

function describeState(
  state: StatePayload,
  showUsername: boolean,
  t: (id: MessageId, values?: Record<string, string | number>) => string,
): string {
  switch (state.state) {
    case "signed_in": {
      const account = state.account as { name?: unknown; username?: unknown } | undefined;
      const username = typeof account?.username === "string" ? account.username : undefined;
      const name = typeof account?.name === "string" && account.name !== "" ? account.name : undefined;
      const shown = name ?? (showUsername ? username : undefined);
      return shown === undefined
        ? t("signedIn")
        : t("signedInAs", { name: boundedText(shown, MAX_FIELD_CHARS) });
    }
    case "awaiting_user":
      return t("waitingHeadline");
    case "error": {
      // Plain words, never the raw error (it is in the agent's log), and when the next try comes.
      const headline = t(FAILURE_WORDS[String(state.reason)] ?? "errorOther");
      const retryAt = typeof state.retryAt === "string" ? Date.parse(state.retryAt) : Number.NaN;
      if (!Number.isFinite(retryAt)) return headline;
      const seconds = Math.max(0, Math.round((retryAt - Date.now()) / 1000));
      return `${headline} · ${t("retryIn")} ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    }
    case "signed_out":
      if (state.idle === true) return `${t("idleHeadline")}. ${t("idleDetail")}`;
      return typeof state.nextCodeAt === "string" ? t("nextCodeSoon") : t("waitingHeadline");
    default:
      return t("connecting");
  }
}
