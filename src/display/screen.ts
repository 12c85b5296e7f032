import type { DeviceSnapshot } from "./device-view.js";
import type { Locale, MessageId } from "../i18n/catalogue.js";
import { translate, type MessageValues } from "../i18n/translate.js";
import { codeGroups, urlParts } from "./readable.js";

/** Every screen a display can show; the page sets it as `body[data-screen]`. */
export const SCREEN_KINDS = [
  "code",
  "expired",
  "waiting",
  "never-heard",
  "broker-unreachable",
  "offline",
  "signed-in",
  "signed-in-neutral",
  "error",
  "retrying",
] as const;
export type ScreenKind = (typeof SCREEN_KINDS)[number];

/** The screens the README pictures on a TV in English: all but `retrying`, which an error screen turns into when its retry is due. */
export const PICTURED_SCREENS: readonly ScreenKind[] = SCREEN_KINDS.filter((kind) => kind !== "retrying");

/**
 * One screen, in one language, ready to draw. `until` is when its countdown ends and `then` takes over, so a
 * page moves on (a code that expires, a retry that is due) without waiting for the server.
 */
export interface Screen {
  readonly kind: ScreenKind;
  readonly headline: string;
  readonly detail: string;
  /** Text before the countdown (`Code expires in`); empty when the screen has no countdown. */
  readonly countdownLabel: string;
  /** ISO 8601 instant the countdown runs to; `null` for none. */
  readonly until: string | null;
  readonly then: Screen | null;
  /** What a screen reader announces when this screen appears. */
  readonly announce: string;
  /** A strip above the screen: the code is still good, but the broker is not reachable. Empty for none. */
  readonly banner: string;
  /** The code screen's parts: the code in reading groups, the address in pieces that may break apart. */
  readonly code?: { readonly groups: readonly string[]; readonly urlParts: readonly string[] };
}

export interface ScreenContext {
  readonly locale: Locale;
  /** The product people sign in to (`DISPLAY_PRODUCT_NAME`). */
  readonly product: string;
  /** Shown instead of the verification URI's text when set (`DISPLAY_SHORT_URL`); the QR code is unchanged. */
  readonly shortUrl: string | undefined;
  /** When the display started watching the device (ms since the epoch). */
  readonly watchingSince: number;
  /** How long without a word from the device before the screen says what to check. */
  readonly neverHeardAfterMs: number;
}

const ERROR_HEADLINES: Readonly<Record<string, MessageId>> = {
  network: "errorNetwork",
  server: "errorServer",
  declined: "errorDeclined",
  invalid_token: "errorInvalid",
};

/**
 * The screen for a device's snapshot at `now`: one rule per state, first match wins. Raw provider and error
 * text never reaches the screen (it is in the agent's log): a TV says what happened in plain words.
 */
export function screenFor(snapshot: DeviceSnapshot, context: ScreenContext, now = Date.now()): Screen {
  const t = (id: MessageId, values?: MessageValues) => translate(context.locale, id, values);
  const screen = (
    kind: ScreenKind,
    headline: string,
    detail = "",
    countdown?: { label: string; until: string; then: Screen | null },
  ): Screen => ({
    kind,
    headline,
    detail,
    countdownLabel: countdown?.label ?? "",
    until: countdown?.until ?? null,
    then: countdown?.then ?? null,
    announce: [headline, detail].filter(Boolean).join(". "),
    banner: "",
  });
  // A name or id from the payload, isolated (FSI ... PDI) so a Latin name in an Arabic sentence keeps its place.
  const isolate = (text: string) => `\u2068${text}\u2069`;
  const future = (iso: string | undefined) => iso !== undefined && Date.parse(iso) > now;

  const waiting = screen("waiting", t("waitingHeadline"));
  const { prompt, state, pause } = snapshot;
  if (snapshot.availability === "offline") return screen("offline", t("offlineHeadline"), t("offlineDetail"));
  if (prompt && future(prompt.expiresAt)) {
    const shownUrl = context.shortUrl ?? prompt.verificationUri;
    const minutes = Math.max(1, Math.round((Date.parse(prompt.expiresAt) - now) / 60_000));
    return {
      ...screen("code", t("codeHeadline", { product: isolate(context.product) }), "", {
        label: t("codeExpiresIn"),
        until: prompt.expiresAt,
        then: screen("expired", t("expiredHeadline"), t("nextCodeSoon")),
      }),
      announce: t("announceCode", {
        code: codeGroups(prompt.userCode).join(" "),
        url: urlParts(shownUrl).join(""),
        minutes,
      }),
      code: { groups: codeGroups(prompt.userCode), urlParts: urlParts(shownUrl) },
      // A person may still sign in with the code on screen: the agent talks to the provider, not the broker.
      banner: snapshot.brokerConnected ? "" : t("brokerHeadline"),
    };
  }
  if (!snapshot.brokerConnected) return screen("broker-unreachable", t("brokerHeadline"), t("brokerDetail"));
  if (state?.state === "signed_in") {
    if (!state.account) return screen("signed-in-neutral", t("signedIn"), t("signedInDetail"));
    const { name, username } = state.account;
    return screen(
      "signed-in",
      t("signedInAs", { name: isolate(name || username) }),
      username !== name ? username : "",
    );
  }
  if (state?.state === "error") {
    const headline = t(ERROR_HEADLINES[state.reason ?? ""] ?? "errorOther");
    if (!future(state.retryAt) || state.retryAt === undefined) return screen("error", headline);
    return screen("error", headline, "", {
      label: t("retryIn"),
      until: state.retryAt,
      then: screen("retrying", t("retrying")),
    });
  }
  if (pause && future(pause.until)) {
    const headline =
      pause.reason === "expired" ? t("expiredHeadline") : t(ERROR_HEADLINES[pause.reason] ?? "errorOther");
    return screen(pause.reason === "expired" ? "expired" : "error", headline, "", {
      label: t("nextCodeIn"),
      until: pause.until,
      then: waiting,
    });
  }
  if (prompt) return screen("expired", t("expiredHeadline"), t("nextCodeSoon"));
  if (snapshot.availability === "unknown" && state === null) {
    const neverHeard = screen(
      "never-heard",
      t("neverHeardHeadline"),
      t("neverHeardDetail", { device: isolate(snapshot.deviceId) }),
    );
    const after = context.watchingSince + context.neverHeardAfterMs;
    if (after <= now) return neverHeard;
    // Not a countdown a person needs to see: the label stays empty, the page only moves on at `until`.
    return { ...waiting, until: new Date(after).toISOString(), then: neverHeard };
  }
  return waiting;
}
