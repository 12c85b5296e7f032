/**
 * Japanese and Chinese line breaking on the web display, in Chromium against real Mosquitto: on phones and tablets
 * held upright every screen's text breaks between phrases, never inside a katakana word (サ/インイン), never before a
 * small kana, the prolonged sound mark or closing punctuation, and never leaves one character alone on a line.
 * Lines are found from the DOM: each character's box (Range.getClientRects), a new line where the top moves down.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config/index.js";
import { startWebDisplay } from "../../src/display/web-display.js";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { scenes, type Publish } from "../helpers/display-scenes.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";

const SIZES = [
  { width: 390, height: 844 },
  { width: 360, height: 640 },
  { width: 768, height: 1024 },
] as const;

/** A product name in the language, as a shop would set it: part of the headline that is broken into lines. */
const PRODUCTS = { ja: "リビングのテレビ", "zh-Hans": "客厅电视" } as const;

interface Line {
  element: string;
  text: string;
}

/**
 * The lines of every visible text block the stylesheet gives phrase breaking to (headlines, details, steps, the
 * expiry line, the QR caption, the banner): per element, its characters in order with the line each lies on.
 * The address and the code are left out (Latin, with their own breaking rules).
 */
const LINES = `(() => {
  const lines = [];
  for (const [index, element] of [...document.querySelectorAll("h1, p, figcaption, .banner")].entries()) {
    if (element.closest("[hidden]") || element.id === "code" || element.id === "url") continue;
    let current = null, top = -Infinity;
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("[hidden]")) continue;
      const text = node.textContent;
      for (let i = 0; i < text.length; ) {
        const size = text.codePointAt(i) > 0xffff ? 2 : 1;
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + size);
        const rect = [...range.getClientRects()].find((r) => r.width > 0);
        const char = text.slice(i, i + size);
        i += size;
        if (!rect || char.trim() === "") { if (current) current.text += char; continue; }
        if (rect.top > top + rect.height / 2) {
          current = { element: index + " " + (element.id || element.className || element.tagName), text: "" };
          lines.push(current);
          top = rect.top;
        }
        current.text += char;
      }
    }
  }
  return lines.map((line) => ({ element: line.element, text: line.text.trim() }));
})()`;

/** What may not start a line in Japanese or Chinese (JIS X 4051 kinsoku: small kana, ー, closing punctuation). */
const NO_LINE_START =
  /^[ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰ-ㇿー゛゜ゝゞヽヾ々、。，．：；？！）」』】〕〉》”’・…‥]/u;
const KATAKANA = /[\u30a0-\u30ff\u31f0-\u31ff]/u;

/** Every place where one line ends inside a katakana word, as "end/start". */
function katakanaSplits(lines: Line[]): string[] {
  const found: string[] = [];
  for (const [i, line] of lines.entries()) {
    const next = lines[i + 1];
    if (next === undefined || next.element !== line.element) continue;
    const last = [...line.text].at(-1) ?? "";
    const first = [...next.text][0] ?? "";
    if (KATAKANA.test(last) && KATAKANA.test(first)) found.push(`${line.text}/${next.text}`);
  }
  return found;
}

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe("Japanese and Chinese text breaks between phrases on phones and tablets (Chromium)", () => {
  const { bed, probe } = useTestBed();

  for (const lang of ["ja", "zh-Hans"] as const) {
    it(`keeps words whole and no line starts with a small kana or ー, in ${lang}`, async () => {
      const tag = `cjk-${lang}-${process.pid}`;
      const all = scenes(tag);
      const publish: Publish = (topic, payload, retain) => probe.publish(topic, payload, { retain, qos: 1 });
      for (const scene of all) await scene.publish(publish, "retained");
      const running = await startWebDisplay(
        loadDisplayConfig(
          {
            EDGE_SIGNIN_MQTT_URL: bed.broker.url,
            EDGE_SIGNIN_DISPLAY_PORT: "0",
            EDGE_SIGNIN_DISPLAY_PRODUCT_NAME: PRODUCTS[lang],
            EDGE_SIGNIN_DISPLAY_NEVER_HEARD_SECONDS: "1",
          },
          all.map((scene) => scene.deviceId),
        ),
        captureLogger().logger,
      );
      const problems: string[] = [];
      let wrapped = 0;
      try {
        for (const size of SIZES) {
          // Made again for each size: a screen such as "signed in" becomes another one after a while.
          const fresh = scenes(tag);
          for (const scene of fresh) await scene.publish(publish, "retained");
          const context = await browser.newContext({ viewport: size, locale: lang });
          try {
            for (const scene of fresh) {
              const page = await context.newPage();
              await gotoPage(
                page,
                `${running.url}/devices/${encodeURIComponent(scene.deviceId)}?lang=${lang}`,
              );
              // The live part (an expiry event) only reaches a page that is listening.
              await page.waitForSelector('body:not([data-connection="connecting"])', { timeout: 15_000 });
              await scene.publish(publish, "live");
              await page.waitForSelector(`body[data-screen="${scene.screen}"]`, { timeout: 15_000 });
              expect(await page.evaluate<string>("document.documentElement.lang")).toBe(lang);
              const lines = await page.evaluate<Line[]>(LINES);
              const where = `${scene.screen} ${size.width}x${size.height}`;
              const byElement = new Map<string, Line[]>();
              for (const line of lines)
                byElement.set(line.element, [...(byElement.get(line.element) ?? []), line]);
              for (const group of byElement.values()) {
                if (group.length > 1) wrapped++;
                for (const line of group.slice(1))
                  if (NO_LINE_START.test(line.text)) problems.push(`${where}: line starts "${line.text}"`);
                for (const line of group)
                  if (group.length > 1 && [...line.text].length === 1)
                    problems.push(`${where}: "${line.text}" alone on a line`);
              }
              for (const split of katakanaSplits(lines)) problems.push(`${where}: word split "${split}"`);
              await page.close();
            }
          } finally {
            await context.close();
          }
        }
      } finally {
        await running.stop();
      }
      expect(problems).toStrictEqual([]);
      // The check looked at text that wraps: at these sizes several blocks take more than one line.
      expect(wrapped).toBeGreaterThan(3);
    });
  }
});
