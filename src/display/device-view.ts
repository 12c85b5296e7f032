import { EventEmitter } from "eventemitter3";
import { listen } from "../listen.js";
import type { DeviceWatcher, DeviceWatcherEvents } from "../mqtt/device-watcher.js";
import type { Availability, DisplayPayload, StatePayload } from "../mqtt/topics.js";
import { qrSvg } from "./qr.js";

/** The prompt as a display shows it: the payload plus the QR code of the URL to open. */
export interface ShownPrompt extends DisplayPayload {
  /** What the QR code holds: `verificationUriComplete` when the provider gives one, else `verificationUri`. */
  readonly qrUrl: string;
  /** The QR code as a standalone SVG document (black on white, with a quiet zone). */
  readonly qrSvg: string;
}

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
  private prompt: ShownPrompt | null = null;
  private unsubscribe: () => void = () => undefined;
  private cancelStale: () => void = () => undefined;

  constructor(
    readonly deviceId: string,
    private readonly watcher: DeviceWatcher,
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
        this.prompt = current && show(current);
        if (current)
          this.cancelStale = whenPromptStale(current, () => {
            this.prompt = null;
            this.changed();
          });
        this.changed();
      },
      state: (state) => {
        this.state = showState(state);
        this.changed();
      },
      availability: (availability) => {
        this.availability = availability;
        this.changed();
      },
      connection: (connected) => {
        this.brokerConnected = connected;
        this.changed();
      },
    });
  }

  stop(): void {
    this.unsubscribe();
    this.cancelStale();
  }

  snapshot(): DeviceSnapshot {
    return {
      deviceId: this.deviceId,
      brokerConnected: this.brokerConnected,
      availability: this.availability,
      state: this.state,
      prompt: this.prompt,
      serverTime: new Date().toISOString(),
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
  return {
    state,
    since,
    deviceId,
    ...(account ? { account: { name: account.name, username: account.username } } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(reason !== undefined ? { reason } : {}),
    ...(message !== undefined ? { message } : {}),
    ...(retryAt !== undefined ? { retryAt } : {}),
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

function show(prompt: DisplayPayload): ShownPrompt {
  const qrUrl = prompt.verificationUriComplete ?? prompt.verificationUri;
  return { ...prompt, qrUrl, qrSvg: qrSvg(qrUrl) };
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

/** Calls `onStale` once when the prompt stops being current (see isPromptCurrent); returns the cancel. */
export function whenPromptStale(prompt: Pick<DisplayPayload, "expiresAt">, onStale: () => void): () => void {
  // setTimeout holds at most 2^31-1 ms (about 24.8 days); a code never lives that long.
  const delay = Math.min(Math.max(0, Date.parse(prompt.expiresAt) - Date.now()), 2 ** 31 - 1);
  const timer = setTimeout(onStale, delay);
  timer.unref();
  return () => clearTimeout(timer);
}
