import { describe, expect, it } from "vitest";
import { boundedText, cutText, MAX_FIELD_CHARS } from "../../src/util/bounded.js";

const FAMILY = "👨‍👩‍👧‍👦"; // man, ZWJ, woman, ZWJ, girl, ZWJ, boy: 7 code points, one character on screen
const graphemes = (text: string) => [
  ...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text),
];

describe("text cut to a bound", () => {
  it("keeps a ZWJ family emoji at the cut whole: dropped entirely, never split", () => {
    // A name whose family emoji straddles the 256th code point, as a claim on a display does.
    const name = `${"a".repeat(MAX_FIELD_CHARS - 4)}${FAMILY}${"b".repeat(10)}`;
    const cut = boundedText(name, MAX_FIELD_CHARS);
    expect(cut).toBe(`${"a".repeat(MAX_FIELD_CHARS - 4)}…`);
    expect([...cut].length).toBeLessThanOrEqual(MAX_FIELD_CHARS);
  });

  it("keeps every grapheme whole wherever the cut falls: flags, accents, skin tones", () => {
    const text = `x${"🇩🇪é👍🏽".repeat(30)}`.normalize("NFD");
    for (let max = 1; max <= 80; max++) {
      const cut = cutText(text, max);
      expect([...cut].length).toBeLessThanOrEqual(max);
      const kept = cut.endsWith("…") ? cut.slice(0, -1) : cut;
      expect(text.startsWith(kept)).toBe(true);
      // The kept part ends on a grapheme boundary of the original.
      expect([0, ...graphemes(text).map((g) => g.index + g.segment.length)]).toContain(kept.length);
    }
  });

  it("leaves text within the bound as it is, and bounds one grapheme of a thousand combining marks", () => {
    expect(boundedText(`Ada ${FAMILY}`, MAX_FIELD_CHARS)).toBe(`Ada ${FAMILY}`);
    const zalgo = `Z${"\u0301".repeat(1000)}`;
    expect(cutText(zalgo, MAX_FIELD_CHARS)).toBe("…");
  });
});
