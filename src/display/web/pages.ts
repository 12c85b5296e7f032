/**
 * The web display's HTML. Pages are static shells in one language: the script fills them from the event
 * stream, so the same page is right whether it was opened before, during or after a sign-in.
 */
import { RTL_LOCALES, type Locale } from "../../i18n/catalogue.js";
import { translate } from "../../i18n/translate.js";

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

function shell(title: string, body: string, bodyAttributes = "", locale: Locale = "en"): string {
  return `<!doctype html>
<html lang="${locale}" dir="${RTL_LOCALES.has(locale) ? "rtl" : "ltr"}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/assets/display.css">
<link rel="stylesheet" href="/assets/theme.css">
</head>
<body${bodyAttributes}>
${body}
</body>
</html>
`;
}

export interface PageBrand {
  /** The product people sign in to, for the header and the headline. */
  readonly product: string;
  /** Whether /assets/logo serves a logo. */
  readonly logo: boolean;
}

/**
 * One device's sign-in screen in one language. Every text that changes lives in an element the script
 * addresses by id; the few texts the page writes on its own (before the stream answers, or when it is lost)
 * travel in `data-text-*` attributes.
 */
export function devicePage(deviceId: string, locale: Locale = "en", brand?: PageBrand): string {
  const t = (id: Parameters<typeof translate>[1], values?: Parameters<typeof translate>[2]) =>
    escapeHtml(translate(locale, id, values));
  const id = escapeHtml(deviceId);
  const product = escapeHtml(brand?.product ?? deviceId);
  return shell(
    translate(locale, "pageTitle", { device: deviceId }),
    `<header>${brand?.logo ? `<img src="/assets/logo" alt="">` : ""}<span>${product}</span></header>
<div id="banner" class="banner" role="status" hidden></div>
<main>
  <section id="code-screen" class="code-screen" hidden>
    <div class="steps">
      <h1 id="code-headline"></h1>
      <p class="step">${t("codeOpen")}</p>
      <a id="url" class="url" dir="ltr"></a>
      <p class="step">${t("codeEnter")}</p>
      <p id="code" class="code" dir="ltr"></p>
      <p class="expiry"><span id="new-code" class="new-code" hidden>${t("codeNew")}</span> <span id="countdown-label"></span> <span id="countdown" class="countdown" dir="ltr"></span></p>
      <p id="no-qr" class="no-qr" hidden>${t("codeNoQr")}</p>
    </div>
    <figure id="qr-figure" class="qr">
      <img id="qr" alt="">
      <figcaption id="qr-caption">${t("codeScan")}</figcaption>
    </figure>
  </section>
  <section id="message-screen" class="message-screen">
    <h1 id="headline">${t("connecting")}</h1>
    <p id="detail" class="detail"></p>
    <p class="retry"><span id="retry-label"></span> <span id="retry" class="countdown" dir="ltr"></span></p>
  </section>
</main>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>
<footer><span id="device">${id}</span></footer>
<script src="/assets/display.js" defer></script>`,
    ` data-device="${id}" data-lang="${locale}" data-screen="connecting" data-connection="connecting"` +
      ` data-text-connecting="${t("connecting")}" data-text-reconnecting="${t("reconnecting")}"`,
    locale,
  );
}

/** Several devices: a list to pick from (a kiosk is pointed at one device's page). */
export function indexPage(deviceIds: readonly string[], locale: Locale = "en"): string {
  const headline = escapeHtml(translate(locale, "indexHeadline"));
  return shell(
    "edge-signin",
    `<main class="index"><h1>${headline}</h1><ul>${deviceList(deviceIds)}</ul></main>`,
    "",
    locale,
  );
}

/** An unknown device: the ones this server shows, rather than a blank page. */
export function notFoundPage(deviceIds: readonly string[], locale: Locale = "en"): string {
  const t = (id: "notFoundHeadline" | "notFoundDetail") => escapeHtml(translate(locale, id));
  return shell(
    translate(locale, "notFoundHeadline"),
    `<main class="index"><h1>${t("notFoundHeadline")}</h1><p>${t("notFoundDetail")}</p><ul>${deviceList(deviceIds)}</ul></main>`,
    "",
    locale,
  );
}

function deviceList(deviceIds: readonly string[]): string {
  return deviceIds
    .map((id) => `<li><a href="/devices/${encodeURIComponent(id)}">${escapeHtml(id)}</a></li>`)
    .join("\n");
}
