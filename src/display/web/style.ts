import { DISPLAY_DEFAULTS } from "../../config/index.js";

const DEFAULT_COLORS = DISPLAY_DEFAULTS.colors;

/**
 * Built for a TV seen from three metres and for a phone in the hand: sizes in viewport units with floors in
 * pixels (nothing smaller than 14 px anywhere), one column when the screen is taller than wide (phones,
 * portrait signage) and two when it is wider, system fonts only (nothing to download on an offline network).
 * Colours come from custom properties (/assets/theme.css, from the DISPLAY_*_COLOR settings); every pair in
 * the default theme passes WCAG 2.2 AA (4.5:1) with a wide margin, and forced colours (Windows high contrast)
 * and reduced motion are honoured.
 * Engines older than Chromium 79 (Samsung Tizen TVs to 2021, LG webOS to 2020) drop every declaration with
 * clamp(), min() or max(): each has a plain declaration just before it, sized for a landscape TV, which such an
 * engine keeps instead. Logical properties (margin-inline-start, Chromium 87) are avoided for the same reason.
 */
export const STYLE_CSS = `
:root { --bg: ${DEFAULT_COLORS.background}; --fg: ${DEFAULT_COLORS.text}; --muted: #d0d0d0; --accent: ${DEFAULT_COLORS.accent}; --good: #7dff9b; --bad: #ffb0a0; --warn: #ffd400; }
*, *::before, *::after { box-sizing: border-box; }
html { height: 100%; }
/* min-height, and no overflow: hidden: a page zoomed to 200 % on a phone scrolls rather than being cut off. */
body { min-height: 100%; margin: 0; }
body {
  background: var(--bg);
  color: var(--fg);
  font-family: "DejaVu Sans", "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", "Noto Sans Arabic", Helvetica, Arial, sans-serif;
  font-size: 4vh;
  font-size: clamp(16px, min(2.6vw, 4vh), 160px);
  line-height: 1.3;
  display: flex;
  flex-direction: column;
}
[hidden] { display: none !important; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
header { display: flex; align-items: center; gap: 0.5em; padding: 1.5vh 4vw 0; color: var(--muted); font-size: 0.7em; font-size: max(14px, 0.7em); }
header img { height: 1.8em; width: auto; }
main { flex: 1; display: flex; align-items: center; justify-content: center; padding: 2vh 4vw; min-height: 0; }
h1 { font-size: 1.35em; margin: 0 0 0.5em; font-weight: 700; text-wrap: balance; }
p { margin: 0; }

.banner { background: var(--warn); color: #000; font-weight: 700; text-align: center; padding: 0.35em 1em; }

.code-screen { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4vw; align-items: center; width: 100%; }
.step { color: var(--muted); }
.url { display: block; font-weight: 700; color: var(--accent); margin: 0.15em 0 0.7em; unicode-bidi: isolate; text-decoration: none; }
a.url[href] { text-decoration: underline; text-decoration-thickness: 0.06em; text-underline-offset: 0.15em; }
.url span { white-space: nowrap; }
.url.too-long span { white-space: normal; overflow-wrap: anywhere; }
.code {
  /* Monospace with a slashed zero where the font has one: 0/O and 1/I/l never look alike. */
  font-family: "DejaVu Sans Mono", "Cascadia Mono", Consolas, "Liberation Mono", "Noto Sans Mono", monospace;
  font-variant-numeric: slashed-zero;
  font-feature-settings: "zero" 1;
  font-size: 7.5vw;
  font-size: clamp(32px, min(7.5vw, 14vh), 600px);
  font-weight: 700;
  letter-spacing: 0.05em;
  line-height: 1.1;
  margin: 0.05em 0 0.15em;
  white-space: nowrap;
  unicode-bidi: isolate;
}
/* The code is always laid out left to right (dir="ltr"): margin-left is its start in every language. */
.code .group + .group { margin-left: 0.45em; }
.code.changed { animation: code-changed 1.2s ease-out 2; }
@keyframes code-changed { 0% { color: var(--warn); transform: scale(1.06); } 100% { color: var(--fg); transform: none; } }
/* In the line under the code: showing it never moves the code someone may be typing. */
.new-code { display: inline-block; background: var(--warn); color: #000; font-weight: 700; padding: 0 0.5em; border-radius: 0.3em; margin: 0 0.15em; }
.expiry { color: var(--muted); }
.expiry.soon { color: var(--warn); }
.countdown { font-variant-numeric: tabular-nums; font-weight: 700; unicode-bidi: isolate; }

.qr { margin: 0; text-align: center; color: var(--muted); }
.qr img { display: block; margin: 0 auto; width: 56vh; height: 56vh; width: min(34vw, 56vh); height: min(34vw, 56vh); background: #fff; image-rendering: pixelated; }
.qr figcaption { margin-top: 0.4em; font-size: 0.85em; font-size: max(14px, 0.85em); }
.no-qr { color: var(--muted); margin-top: 0.6em; }

.message-screen { text-align: center; max-width: 90vw; max-width: min(90vw, 40em); }
.message-screen h1 { font-size: 5vw; font-size: clamp(24px, min(5vw, 9vh), 400px); }
.detail { color: var(--muted); }
.retry { color: var(--muted); margin-top: 0.6em; }
body[data-screen="signed-in"] .message-screen h1, body[data-screen="signed-in-neutral"] .message-screen h1 { color: var(--good); }
body[data-screen="error"] .message-screen h1,
body[data-screen="offline"] .message-screen h1,
body[data-screen="broker-unreachable"] .message-screen h1,
body[data-screen="never-heard"] .message-screen h1 { color: var(--bad); }

footer { padding: 0 4vw 1.5vh; color: var(--muted); font-size: 0.55em; font-size: max(14px, 0.55em); text-align: end; }

/* Japanese is written without spaces: break lines between phrases, not inside words (Chromium 119 and later). */
:lang(ja) h1, :lang(ja) p, :lang(ja) figcaption, :lang(ja) .banner { word-break: auto-phrase; }

/*
 * Screens that may stay up for hours (signed in, offline, paused) drift slowly and dim after two minutes, so a
 * TV or an OLED panel does not keep the same pixels lit. The code screen changes with every code.
 */
body[data-screen="signed-in-neutral"] main, body[data-screen="idle"] main, body[data-screen="offline"] main,
body[data-screen="never-heard"] main, body[data-screen="broker-unreachable"] main, body[data-screen="error"] main {
  animation: burn-in-dim 20s linear 120s forwards, burn-in-drift 1200s ease-in-out 120s infinite alternate;
}
@keyframes burn-in-dim { to { opacity: 0.55; } }
@keyframes burn-in-drift { 0% { transform: none; } 50% { transform: translate(1.5vw, 1.5vh); } 100% { transform: translate(-1.5vw, -1vh); } }

/* Taller than wide: phones held upright, portrait signage. One column, the QR code under the code. */
@media (max-aspect-ratio: 1/1) {
  body { font-size: 4.6vw; font-size: clamp(16px, min(4.6vw, 2.6vh), 120px); }
  .code-screen { grid-template-columns: minmax(0, 1fr); gap: 3vh; text-align: center; }
  .code { font-size: 13vw; font-size: clamp(32px, min(13vw, 8vh), 400px); }
  .qr img { width: 34vh; height: 34vh; width: min(62vw, 34vh); height: min(62vw, 34vh); }
  .message-screen h1 { font-size: 8vw; font-size: clamp(24px, min(8vw, 5vh), 300px); }
}
/* Short and wide: phones on their side. */
@media (min-aspect-ratio: 3/2) and (max-height: 500px) {
  body { font-size: 4.2vh; font-size: clamp(14px, 4.2vh, 40px); }
  h1 { margin-bottom: 0.3em; }
  .code { font-size: 12vh; font-size: clamp(28px, 12vh, 200px); }
  .qr img { width: 62vh; height: 62vh; }
}

@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; }
}
@media (forced-colors: active) {
  .banner, .new-code { border: 2px solid CanvasText; }
  /* The QR code must stay black on white to scan, whatever the system colours. */
  .qr img { forced-color-adjust: none; }
}

.index { flex-direction: column; align-items: flex-start; }
.index a { color: var(--accent); }
`;

/** Colours of the page, as CSS colours (`#rrggbb`); each replaces the default theme's. */
export interface Theme {
  readonly background?: string;
  readonly text?: string;
  readonly accent?: string;
}

/** /assets/theme.css: the configured colours as custom properties over the defaults of {@link STYLE_CSS}. */
export function themeCss(theme: Theme | undefined): string {
  const rules = [
    theme?.background ? `--bg: ${theme.background};` : "",
    // A configured text colour is used for secondary text too: only the default theme's grey is known to pass.
    theme?.text && theme.text.toLowerCase() !== DEFAULT_COLORS.text.toLowerCase()
      ? `--fg: ${theme.text}; --muted: ${theme.text};`
      : "",
    theme?.accent ? `--accent: ${theme.accent};` : "",
  ].join(" ");
  return `:root { ${rules} }\n`;
}
