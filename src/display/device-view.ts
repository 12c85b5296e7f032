import { EventEmitter } from "eventemitter3";
import { DISPLAY_DEFAULTS } from "../config/index.js";
import { listen } from "../util/emitter.js";
import type { DeviceWatcher, DeviceWatcherEvents } from "../mqtt/device-watcher.js";
import type { Availability, DisplayPayload, StatePayload } from "../mqtt/topics.js";
import {
  boundedText,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  MAX_URL_CHARS,
  MAX_USER_CODE_CHARS,
} from "../util/bounded.js";
import { promptQrUrl, qrSvg } from "../util/qr.js";

/**
 * The prompt as a display shows it: the payload's own fields, each cut to what a screen can show
 * (src/util/bounded.ts), plus the QR code of the URL to open.
 */
export interface ShownPrompt extends DisplayPayload {
  /**
   * What the QR code holds: `verificationUriComplete` when the provider gives one, else `verificationUri`;
   * `null` when neither is an `https` URL short enough for a QR code (the screen shows the address only).
   */
  readonly qrUrl: string | null;
  /** The QR code as a standalone SVG document (black on white, with a quiet zone), or `null` with `qrUrl`. */
  readonly qrSvg: string | null;
}

/** What a shared screen may say about who signed in (privacy on shared screens). */
export interface DevicePrivacy {
  /** How long after a sign-in the person's name stays on the screen, in ms; then a neutral "signed in". */
  readonly signedInNameMs: number;
  /** Also show the username (usually the email address) under the name. */
  readonly showUsername: boolean;
}

/**
 * How soon before the display's own connection drops an `offline` is taken for the broker's goodbye rather than
 * the device's: a broker that shuts down (SIGTERM: a restart, an upgrade) sends the will of every client it still
 * has, the agent's `offline` among them, and then closes every connection. Both reach the display within
 * milliseconds; the window is wide for a busy display.
 */
export const BROKER_GOODBYE_MS = 2_000;

/** A short moment for the person to see it worked; then the name leaves the screen. */
export const DEFAULT_PRIVACY: DevicePrivacy = {
  signedInNameMs: DISPLAY_DEFAULTS.signedInNameMs,
  showUsername: DISPLAY_DEFAULTS.showUsername,
};

/**
 * The state as a display shows it. The page reaches more people than the broker does (anyone who can open it),
 * so the account is cut down to what the screen says: no tenant or account ids.
 */
export type ShownState = Omit<StatePayload, "account"> & {
  readonly account?: { readonly name: string; readonly username: string };
};

/** Everything a display needs to draw one device, at one moment. Sent whole, so a late page is right at once. */
export interface DeviceSnapshot {
  readonly deviceId: string;
  /** Whether the display's own MQTT connection is up; when down, everything else may be stale. */
  readonly brokerConnected: boolean;
  /** `unknown` until the device's retained availability arrives (or when it never published one). */
  readonly availability: Availability | "unknown";
  readonly state: ShownState | null;
  readonly prompt: ShownPrompt | null;
  /**
   * Between codes: why there is none (`expired` from a `code_expired` event, or a `sign_in_failed` reason) and
   * when the agent asks for the next (`nextCodeAt`, `retryAt`). `null` once a code or a new state arrives.
   */
  readonly pause: { readonly reason: string; readonly until: string } | null;
  /** The display server's clock, so a page on a TV with a wrong clock still counts down correctly. */
  readonly serverTime: string;
}

export interface DeviceViewEvents {
  change: [snapshot: DeviceSnapshot];
}

/**
 * Folds one device's MQTT messages into the snapshot a display draws. The QR code is made here, once per
 * code, so every open page gets the same image without generating it again.
 */
export class DeviceView extends EventEmitter<DeviceViewEvents> {
  private brokerConnected = false;
  private availability: Availability | "unknown" = "unknown";
  private state: ShownState | null = null;
  /** The last prompt received that is still current, shown unless the state has moved past it (shownPrompt). */
  private received: ShownPrompt | null = null;
  private pause: DeviceSnapshot["pause"] = null;
  /** What an `offline` replaced, and when: undone if the connection drops right after (BROKER_GOODBYE_MS). */
  private beforeOffline: { readonly availability: Availability | "unknown"; readonly at: number } | undefined;
  private unsubscribe: () => void = () => undefined;
  private cancelStale: () => void = () => undefined;
  private hideName: NodeJS.Timeout | undefined;

  constructor(
    readonly deviceId: string,
    private readonly watcher: DeviceWatcher,
    private readonly privacy: DevicePrivacy = DEFAULT_PRIVACY,
  ) {
    super();
  }

  /** Listens to the watcher; call before the watcher starts so no retained message is missed. */
  start(): void {
    this.unsubscribe = listen<DeviceWatcherEvents>(this.watcher, {
      display: (prompt, secondsLeft) => {
        this.cancelStale();
        // The countdown from what was received (not the device's wall clock), then: is it still current?
        const received = prompt && countdownFromReceipt(prompt, secondsLeft);
        const current = received && isPromptCurrent(received) ? received : null;
        this.received = current && show(current);
        if (this.shownPrompt()) this.pause = null;
        if (current)
          this.cancelStale = whenPromptStale(current, () => {
            this.received = null;
            this.changed();
          });
        this.changed();
      },
      state: (state) => {
        this.state = this.withoutPrivateData(showState(state));
        if (state.state === "signed_in" || state.state === "error") this.pause = null;
        // A later state may hide the code on screen (signed in meanwhile): shownPrompt() reads both.
        this.changed();
      },
      // The two events that say when the next code comes: the screen counts down to it.
      event: (event) => {
        if (event.type !== "code_expired" && event.type !== "sign_in_failed") return;
        const until = event.type === "code_expired" ? event["nextCodeAt"] : event["retryAt"];
        if (typeof until !== "string" || Number.isNaN(Date.parse(until))) return;
        const reason = event.type === "code_expired" ? "expired" : event["reason"];
        this.pause = {
          reason: boundedText(typeof reason === "string" ? reason : "server", MAX_FIELD_CHARS),
          until: new Date(Date.parse(until)).toISOString(),
        };
        this.changed();
      },
      availability: (availability) => {
        this.beforeOffline =
          availability === "offline" ? { availability: this.availability, at: Date.now() } : undefined;
        this.availability = availability;
        this.changed();
      },
      connection: (connected) => {
        // The device did not go offline; the broker went away. What the device says is heard again on the next
        // connection (its availability is retained): until then the screen says the broker cannot be reached.
        if (!connected && this.beforeOffline && Date.now() - this.beforeOffline.at <= BROKER_GOODBYE_MS)
          this.availability = this.beforeOffline.availability;
        this.beforeOffline = undefined;
        this.brokerConnected = connected;
        this.changed();
      },
    });
  }

  stop(): void {
    this.unsubscribe();
    this.cancelStale();
    clearTimeout(this.hideName);
  }

  snapshot(): DeviceSnapshot {
    return {
      deviceId: this.deviceId,
      brokerConnected: this.brokerConnected,
      availability: this.availability,
      state: this.state,
      prompt: this.shownPrompt(),
      pause: this.pause,
      serverTime: new Date().toISOString(),
    };
  }

  private shownPrompt(): ShownPrompt | null {
    return this.received && !isPromptSuperseded(this.received, this.state) ? this.received : null;
  }

  /**
   * The account as the privacy settings allow: the username only when configured, and the name only until
   * `signedInNameMs` after the sign-in (counted from `since`, or from now if `since` is in the future), after
   * which a timer takes it off every open screen. A retained state read later than that shows no name at all.
   */
  private withoutPrivateData(state: ShownState): ShownState {
    clearTimeout(this.hideName);
    const { account, ...rest } = state;
    if (!account) return state;
    const now = Date.now();
    const since = Date.parse(state.since);
    const hideAt = Math.min(Number.isNaN(since) ? now : since, now) + this.privacy.signedInNameMs;
    if (hideAt <= now) return rest;
    this.hideName = setTimeout(() => {
      if (this.state?.account === undefined) return;
      this.state = rest;
      this.changed();
    }, hideAt - now);
    this.hideName.unref();
    return {
      ...rest,
      account: { name: account.name, username: this.privacy.showUsername ? account.username : "" },
    };
  }

  private changed(): void {
    this.emit("change", this.snapshot());
  }
}

function showState({
  state,
  since,
  deviceId,
  account,
  expiresAt,
  reason,
  message,
  retryAt,
}: StatePayload): ShownState {
  // Only state, since and deviceId are validated by the watcher; the rest is whatever the payload holds.
  const text = (value: unknown, max: number) =>
    boundedText(typeof value === "string" || typeof value === "number" ? String(value) : "", max);
  const field = (value: unknown) => text(value, MAX_FIELD_CHARS);
  return {
    state,
    since: field(since),
    deviceId: field(deviceId),
    ...(typeof account === "object" && account !== null
      ? { account: { name: field(account.name), username: field(account.username) } }
      : {}),
    ...(expiresAt !== undefined ? { expiresAt: field(expiresAt) } : {}),
    ...(reason !== undefined ? { reason: field(reason) as typeof reason } : {}),
    ...(message !== undefined ? { message: text(message, MAX_MESSAGE_CHARS) } : {}),
    ...(retryAt !== undefined ? { retryAt: field(retryAt) } : {}),
  };
}

/**
 * The prompt with `expiresAt` moved onto this display's clock: now + what the broker or the provider said is
 * left (`secondsLeft`, see DeviceWatcherEvents.display). The agent's `expiresAt` comes from the device's clock,
 * which may be hours off (a Raspberry Pi before NTP); a duration received is right whatever either clock says.
 * Without one, the agent's `expiresAt` is kept as sent.
 */
export function countdownFromReceipt(
  prompt: DisplayPayload,
  secondsLeft: number | undefined,
  now: number = Date.now(),
): DisplayPayload {
  if (secondsLeft === undefined) return prompt;
  return { ...prompt, expiresAt: new Date(now + secondsLeft * 1000).toISOString() };
}

/**
 * Only the fields a screen draws, each bounded: the payload is a loose object, and an extra megabyte in it would
 * otherwise go to every open page with every update.
 */
function show(prompt: DisplayPayload): ShownPrompt {
  const qrUrl = promptQrUrl(prompt) ?? null;
  const complete = prompt.verificationUriComplete;
  return {
    deviceId: boundedText(prompt.deviceId, MAX_FIELD_CHARS),
    userCode: boundedText(prompt.userCode, MAX_USER_CODE_CHARS),
    verificationUri: boundedText(prompt.verificationUri, MAX_URL_CHARS),
    ...(complete !== undefined ? { verificationUriComplete: boundedText(complete, MAX_URL_CHARS) } : {}),
    message: boundedText(prompt.message, MAX_MESSAGE_CHARS),
    issuedAt: boundedText(prompt.issuedAt, MAX_FIELD_CHARS),
    expiresAt: boundedText(prompt.expiresAt, MAX_FIELD_CHARS),
    qrUrl,
    qrSvg: (qrUrl === null ? undefined : qrSvg(qrUrl)) ?? null,
  };
}

/**
 * Whether a prompt may still be shown: until its `expiresAt`. An MQTT 5 broker drops a retained prompt when its
 * code expires; a 3.1.1 broker (no message expiry) keeps handing it out, so every display decides here too.
 * A prompt whose `expiresAt` is no date is not current.
 */
export function isPromptCurrent(prompt: Pick<DisplayPayload, "expiresAt">, now = Date.now()): boolean {
  const expiresAt = Date.parse(prompt.expiresAt);
  return Number.isFinite(expiresAt) && expiresAt > now;
}

/**
 * Whether the device's latest state has moved past this code: it says `signed_in` or `signed_out` at or after the
 * code was issued (both times from the device's own clock, so they compare even when that clock is wrong). Such a
 * code is not shown even while it has time left: a broker may hand out a retained code whose deletion it lost (a
 * NATS 2.9 cluster node restarted after a stream leader was lost), and a 3.1.1 broker cannot expire one. `false`
 * when either time cannot be read: the code then stands on its own expiry.
 */
export function isPromptSuperseded(
  prompt: Pick<DisplayPayload, "issuedAt">,
  state: Pick<StatePayload, "state" | "since"> | null,
): boolean {
  if (state === null || (state.state !== "signed_in" && state.state !== "signed_out")) return false;
  const issuedAt = Date.parse(prompt.issuedAt);
  const since = Date.parse(state.since);
  return Number.isFinite(issuedAt) && Number.isFinite(since) && since >= issuedAt;
}

/** Calls `onStale` once when the prompt stops being current (see isPromptCurrent); returns the cancel. */
export function whenPromptStale(prompt: Pick<DisplayPayload, "expiresAt">, onStale: () => void): () => void {
  // setTimeout holds at most 2^31-1 ms (about 24.8 days); a code never lives that long.
  const delay = Math.min(Math.max(0, Date.parse(prompt.expiresAt) - Date.now()), 2 ** 31 - 1);
  const timer = setTimeout(onStale, delay);
  timer.unref();
  return () => clearTimeout(timer);
}
