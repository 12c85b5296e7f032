/**
 * What a display may render, whatever a payload holds. Anyone who can publish on a device's topics (or plant a
 * long `EDGE_SIGNIN_VERIFICATION_URI`) decides what reaches the screen, so every string is cut to a size the
 * screen can show, stripped of control sequences, and a QR code is made only of an `https` URL that fits.
 */

/** Most characters of a user code: RFC 8628 codes are 8 or 9; 32 leaves room for any real provider. */
export const MAX_USER_CODE_CHARS = 32;
/** Most characters of a URL shown as text (the QR code has its own limit). */
export const MAX_URL_CHARS = 512;
/** Most characters of a sentence: a prompt's `message`, a state's `message`. */
export const MAX_MESSAGE_CHARS = 1024;
/** Most characters of a name, a username, a reason, a device id or a timestamp. */
export const MAX_FIELD_CHARS = 256;
/**
 * Most characters in a display's QR code. 512 bytes at error correction M is version 19 (93 modules a side), still
 * read by a phone from a TV across a room; a QR code cannot hold more than 2,331 bytes at all (the
 * `Data too long` that used to crash every display), and a denser one would not scan from a screen anyway.
 */
export const MAX_QR_CHARS = 512;

/**
 * ANSI/ECMA-48 sequences (CSI, OSC, DCS and friends, and two-character ESC sequences), then every remaining
 * control character (C0, DEL, C1) and the bidirectional overrides that make text display in another order than it
 * is stored ("Trojan source"). On a terminal an escape sequence can retitle the window, rewrite the screen or,
 * in some terminals, answer back as typed input.
 */
const ESCAPE_SEQUENCE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /\u001b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-Z\\-_]|.)?|\u009b[0-?]*[ -/]*[@-~]|[\u0090\u009d\u009e\u009f][^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?/gu;
const CONTROL = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu;

/** User-perceived characters (extended grapheme clusters, UAX #29): where text may be cut. */
const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * One line of text safe to print or draw: escape sequences and control characters removed (a newline or tab
 * becomes a space), at most `max` characters (code points), with an ellipsis where it was cut.
 */
export function boundedText(text: string, max: number): string {
  const clean = text
    .replace(ESCAPE_SEQUENCE, "")
    .replace(CONTROL, (c) => (c === "\n" || c === "\t" ? " " : ""));
  return cutText(clean, max);
}

/**
 * `text` if it has at most `max` code points, else its longest start of whole graphemes that leaves room for the
 * ellipsis, then `…`. Cut between code points, a family emoji (a ZWJ sequence), a flag or a letter with its
 * accents would be split into broken glyphs; the bound stays in code points so that no one grapheme (a letter
 * under a thousand combining marks) can make the text unbounded.
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max || [...text].length <= max) return text;
  const budget = Math.max(0, max - 1);
  let kept = "";
  let used = 0;
  for (const { segment } of GRAPHEMES.segment(text)) {
    const size = [...segment].length;
    if (used + size > budget) break;
    kept += segment;
    used += size;
  }
  return `${kept}…`;
}

/** Several lines (a terminal's output): each line made safe as in {@link boundedText}, with no length limit. */
export function safeLines(text: string): string {
  return text
    .split("\n")
    .map((line) => boundedText(line, Number.MAX_SAFE_INTEGER))
    .join("\n");
}

/**
 * The URL a QR code may hold, or `undefined` when it must not have one: anything but an absolute `https` URL
 * (`javascript:`, `data:`, `http:`, a bare word) or one longer than {@link MAX_QR_CHARS}. A phone opens what it
 * scans, so the code must hold nothing a person would not open on their own.
 */
export function qrTarget(url: string): string | undefined {
  if (url.length > MAX_QR_CHARS || url !== boundedText(url, MAX_QR_CHARS)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== "https:" || parsed.username !== "" || parsed.password !== "") return undefined;
  return url;
}
