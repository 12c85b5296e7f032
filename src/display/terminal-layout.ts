/**
 * The terminal display's code screen, laid out for the terminal it is on: lines wrapped at word boundaries
 * (Intl.Segmenter, so Japanese and Chinese break between words too), the address broken only between its pieces,
 * and the QR code only when it fits with the address and the code. The address and the code come last, so they
 * are the lines a person sees at the bottom of any terminal.
 */
import type { Locale } from "../i18n/catalogue.js";
import { translate } from "../i18n/translate.js";
import { codeGroups, urlParts } from "./readable.js";

export interface TerminalSize {
  readonly columns: number;
  /** `Infinity` when the output is no terminal (a log, a pipe): the QR code always "fits". */
  readonly rows: number;
}

export interface TerminalPrompt {
  readonly userCode: string;
  readonly shownUrl: string;
  readonly qrUrl: string | undefined;
  /** The QR code as text rows, or `undefined` for none. */
  readonly qr: string | undefined;
  /** Whether the QR code opens the page with the code filled in (a complete URI), or only the page. */
  readonly qrHasCode: boolean;
  readonly secondsLeft: number;
  /** When the code expires, on this machine's clock: printed once, a log line keeps no countdown running. */
  readonly expiresAt: string;
}

const INDENT = "  ";
/** Lines the display may print under the screen before the next one (a state line): kept free. */
const RESERVED_ROWS = 2;

/** Columns a string takes in a terminal: East Asian wide and full-width characters take two. */
export function columnsOf(text: string): number {
  let width = 0;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (
      code < 0x20 ||
      (code >= 0x300 && code <= 0x36f) ||
      code === 0x200b ||
      (code >= 0x2066 && code <= 0x2069)
    )
      continue;
    width += isWide(code) ? 2 : 1;
  }
  return width;
}

function isWide(code: number): boolean {
  return (
    (code >= 0x1100 && code <= 0x115f) ||
    (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6)
  );
}

/**
 * `text` in lines at most `width` columns wide, broken between words (spaces are dropped at a break); a word
 * wider than a line is broken between its characters, as a terminal would.
 */
export function wrapWords(text: string, width: number, locale: string): string[] {
  const segmenter = new Intl.Segmenter(locale, { granularity: "word" });
  return wrapPieces(
    [...segmenter.segment(text)].map((part) => part.segment),
    width,
  );
}

function wrapPieces(pieces: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = "";
  const push = () => {
    if (line.trim() !== "") lines.push(line.trimEnd());
    line = "";
  };
  for (const piece of pieces) {
    if (columnsOf(line + piece) <= width) {
      line += piece;
      continue;
    }
    push();
    if (piece.trim() === "") continue;
    if (columnsOf(piece) <= width) {
      line = piece;
      continue;
    }
    for (const char of piece) {
      if (columnsOf(line + char) > width) push();
      line += char;
    }
  }
  push();
  return lines;
}

/** "14:32" */
function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function timeOfDay(iso: string, locale: Locale): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "?";
  return new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit" }).format(at);
}

/** The code screen's lines, for a terminal of `size`. */
export function promptLines(prompt: TerminalPrompt, size: TerminalSize, locale: Locale): string[] {
  const t = (id: Parameters<typeof translate>[1]) => translate(locale, id);
  const width = Math.max(10, size.columns - INDENT.length);
  const words = (text: string) => wrapWords(text, width, locale).map((line) => INDENT + line);
  const text = [
    ...words(t("codeHeadlineDefault")),
    ...words(t("codeOpen")),
    ...wrapPieces(urlParts(prompt.shownUrl), width - 2).map((line) => `${INDENT}  ${line}`),
    ...words(t("codeEnter")),
    // The provider's own grouping as given (WDJB-MJHT), else reading groups (GTK 8ZJ 2LA).
    `${INDENT}  ${/[\s-]/.test(prompt.userCode) ? prompt.userCode : codeGroups(prompt.userCode).join(" ")}`,
    ...words(`${t("codeExpiresIn")} ${clock(prompt.secondsLeft)} (${timeOfDay(prompt.expiresAt, locale)})`),
  ];
  const qrRows = prompt.qr?.split("\n").filter((row) => row !== "") ?? [];
  const caption = words(prompt.qrHasCode ? t("codeScan") : t("codeScanOpens"));
  const qrWidth = Math.max(0, ...qrRows.map((row) => columnsOf(row)));
  const fits =
    qrRows.length > 0 &&
    qrWidth + INDENT.length <= size.columns &&
    qrRows.length + caption.length + text.length + 1 + RESERVED_ROWS <= size.rows;
  // No QR code may be made of this address (not https, too long): say to type it, as the web display does.
  if (qrRows.length === 0) return ["", ...text, ...words(t("codeNoQr"))];
  if (!fits) return ["", ...text];
  // The QR code first, its caption under it, then the address and the code: the last lines on screen.
  return ["", ...qrRows.map((row) => INDENT + row), ...caption, ...text];
}
