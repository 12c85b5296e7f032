/**
 * Every screen of the web display in Chromium, at TV, phone and portrait-signage sizes, in English, German,
 * Japanese and Arabic (right to left): nothing overflows, no text is smaller than 14 px, the code reads in
 * groups, the address breaks only between its pieces, and the QR code decodes. The display runs as the shipped
 * bundle (`edge-signin display --web`) on real Mosquitto; the scenes are retained messages
 * (test/helpers/display-scenes.ts).
 */
import { mkdir, writeFile } from "node:fs/promises";
import jsqr from "jsqr";
import type { Browser, Page } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { startCli, type RunningCli } from "../helpers/cli.js";
import { LONG_URI, scenes, type Publish, type Scene } from "../helpers/display-scenes.js";
import { useTestBed } from "../helpers/fixture.js";
import { connectProbe, type MqttProbe } from "../helpers/mqtt-probe.js";

const ARTIFACTS = new URL("../../test-artifacts/states/", import.meta.url);

const SIZES = {
  "tv-720p": { width: 1280, height: 720 },
  "tv-1080p": { width: 1920, height: 1080 },
  "phone-portrait": { width: 390, height: 844 },
  "phone-landscape": { width: 844, height: 390 },
  "tablet-portrait": { width: 820, height: 1180 },
  "portrait-signage": { width: 1080, height: 1920 },
  "tv-4k": { width: 3840, height: 2160 },
} as const;
type SizeName = keyof typeof SIZES;

/** What each language's headline says on a few screens: proof the page speaks it, not only declares it. */
const HEADLINES: Record<string, Partial<Record<string, RegExp>>> = {
  en: { code: /^Sign in to /, expired: /^The code expired$/, error: /^Can’t reach the sign-in service$/ },
  de: {
    code: /^Bei .* anmelden$/,
    expired: /^Der Code ist abgelaufen$/,
    offline: /^Dieses Gerät ist offline$/,
  },
  ja: { code: /にサインイン$/, "signed-in-neutral": /^サインインしました$/ },
  ar: { code: /^سجّل الدخول إلى /, waiting: /^جارٍ الحصول على رمز تسجيل الدخول…$/ },
};
const LANGUAGES = Object.keys(HEADLINES);
const MIN_TEXT_PX = 14;

interface Layout {
  scrollWidth: number;
  scrollHeight: number;
  innerWidth: number;
  innerHeight: number;
  /** Visible text outside the viewport: the element's id or tag and its box. */
  outside: string[];
  /** Visible text smaller than the floor: the element and its size. */
  tiny: string[];
  /** Pieces of the address that were broken over two lines. */
  brokenParts: string[];
  /** Visible text below WCAG 2.2 AA contrast (4.5:1) against the background behind it. */
  lowContrast: string[];
}

/** Measures the page: as a string, because the tests' TypeScript has no DOM library. */
const MEASURE = `(() => {
  const min = ${MIN_TEXT_PX};
  const outside = [], tiny = [], lowContrast = [];
  const rgb = (css) => (css.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  for (const node of document.querySelectorAll("body *")) {
    if (node.closest("[hidden]") || node.classList.contains("visually-hidden")) continue;
    const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim() !== "");
    if (!own && node.tagName !== "IMG") continue;
    const box = node.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const name = (node.id || node.className || node.tagName) + " " + JSON.stringify(node.textContent.slice(0, 30));
    if (box.left < -1 || box.top < -1 || box.right > innerWidth + 1 || box.bottom > innerHeight + 1)
      outside.push(name + " " + [box.left, box.top, box.right, box.bottom].map(Math.round).join(","));
    const size = parseFloat(getComputedStyle(node).fontSize);
    if (own && size < min) tiny.push(name + " " + size + "px");
    if (own) {
      const [a, b] = [luminance(rgb(getComputedStyle(node).color)), luminance(background(node))].sort((x, y) => y - x);
      const ratio = (a + 0.05) / (b + 0.05);
      if (!(ratio >= 4.5)) lowContrast.push(name + " " + ratio.toFixed(2));
    }
  }
  const brokenParts = [...document.querySelectorAll("#url span")]
    .filter((span) => span.getClientRects().length > 1)
    .map((span) => span.textContent);
  const root = document.scrollingElement;
  return { scrollWidth: root.scrollWidth, scrollHeight: root.scrollHeight, innerWidth, innerHeight, outside, tiny, brokenParts, lowContrast };
})()`;

/** The first snapshot the display sends a page of this device: what a page opened now would draw. */
async function firstSnapshot(url: string, deviceId: string): Promise<Snapshot | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5_000);
  try {
    const response = await fetch(`${url}/devices/${deviceId}/events`, { signal: controller.signal });
    let text = "";
    for await (const chunk of response.body ?? []) {
      text += Buffer.from(chunk as Uint8Array).toString("utf8");
      const data = /^data: (.*)$/m.exec(text)?.[1];
      if (data !== undefined && text.includes("\n\n", text.indexOf("data: ")))
        return JSON.parse(data) as Snapshot;
    }
    return undefined;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** What these tests read of a snapshot (src/display/device-view.ts, with the screen it makes). */
interface Snapshot {
  readonly state: unknown;
  readonly screen: { readonly until: string | null };
}

/** Waits, at most 30 s, until the display's snapshot of a device passes the check. */
async function untilDisplayed(url: string, deviceId: string, check: (snapshot: Snapshot) => boolean) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const snapshot = await firstSnapshot(url, deviceId);
    if (snapshot && check(snapshot)) return;
    if (Date.now() > deadline)
      throw new Error(`the display did not show ${deviceId} as published: ${JSON.stringify(snapshot)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function decodeQr(png: Buffer): string | undefined {
  const image = PNG.sync.read(png);
  return jsqr.default(new Uint8ClampedArray(image.data), image.width, image.height)?.data;
}

describe("every screen of the web display, at every size, in four languages (shipped bundle, Chromium)", () => {
  const { bed } = useTestBed({ probe: false });
  let browser: Browser;
  let publisher: MqttProbe;
  let display: RunningCli;
  let unreachable: RunningCli;
  let url: string;
  let unreachableUrl: string;
  let publish: Publish;
  const tag = `states-${process.pid}`;
  const all = scenes(tag);
  /** A host name wider than a phone: its piece must shrink to fit, not overflow or break at a hyphen. */
  const longHost = {
    deviceId: `states-${process.pid}-long-host`,
    uri: "https://contoso-retail-europe-north-and-baltic-states-production.ciamlogin.com/common/oauth2/deviceauth",
  };

  /** The long host's code, its expiry from now (retained: the display has it from its start). */
  const publishLongHost = async () => {
    const now = Date.now();
    await publish(
      `edge-signin/${longHost.deviceId}/display`,
      JSON.stringify({
        deviceId: longHost.deviceId,
        userCode: "WDJB-MJHT",
        verificationUri: longHost.uri,
        message: "",
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 900_000).toISOString(),
      }),
      true,
    );
  };

  const listening = async (cli: RunningCli) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const found = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(cli.stdout())?.[1];
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`the display did not start:\n${cli.stdout()}\n${cli.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    publisher = await connectProbe(bed.broker.url);
    publish = (topic, payload, retain) => publisher.publish(topic, payload, { retain, qos: 1 });
    for (const scene of all) await scene.publish(publish, "retained");
    await publishLongHost();
    const env = {
      EDGE_SIGNIN_DISPLAY_PORT: "0",
      // Long enough for the whole run: the signed-in scene keeps its name; the neutral one is hours old.
      EDGE_SIGNIN_DISPLAY_SIGNED_IN_SECONDS: "3600",
      EDGE_SIGNIN_DISPLAY_NEVER_HEARD_SECONDS: "1",
      EDGE_SIGNIN_DISPLAY_PRODUCT_NAME: "Contoso Kiosk",
    };
    const devices = [...all.map((scene) => scene.deviceId), longHost.deviceId];
    display = startCli(["display", "--web", ...devices.flatMap((id) => ["--device", id])], {
      EDGE_SIGNIN_MQTT_URL: bed.broker.url,
      ...env,
    });
    // A broker nobody listens on: the broker-unreachable screen.
    unreachable = startCli(["display", "--web", "--device", "lonely-tv"], {
      EDGE_SIGNIN_MQTT_URL: "mqtt://127.0.0.1:1",
      ...env,
    });
    [url, unreachableUrl] = await Promise.all([listening(display), listening(unreachable)]);
    // Events are not retained: they reach the display only once its watcher of that device has subscribed,
    // which its retained state having arrived proves (the "broker connected" log line comes before the SUBACK).
    for (const scene of all.filter((candidate) => candidate.screen === "expired"))
      await untilDisplayed(url, scene.deviceId, (snapshot) => snapshot.state !== null);
  }, 90_000);

  // Each look at the screens starts from scenes published just before it: their countdowns run from the moment
  // they are made (the retry's ends 95 s later), and the looks before this one may have taken minutes.
  beforeEach(async () => {
    const fresh = scenes(tag);
    for (const scene of fresh) {
      await scene.publish(publish, "retained");
      await scene.publish(publish, "live");
    }
    await publishLongHost();
    for (const scene of fresh) {
      const until = scene.countdownTo;
      if (until !== undefined)
        await untilDisplayed(url, scene.deviceId, (snapshot) => snapshot.screen.until === until);
    }
  }, 60_000);

  afterAll(async () => {
    display?.child.kill("SIGTERM");
    unreachable?.child.kill("SIGTERM");
    await Promise.all([display?.exited, unreachable?.exited]);
    await publisher?.close();
    await browser?.close();
  });

  const targets: Array<{ screen: string; page: (lang: string) => string }> = [
    ...all.map((scene: Scene) => ({
      screen: scene.screen,
      page: (lang: string) => `${url}/devices/${scene.deviceId}?lang=${lang}`,
    })),
    {
      screen: "broker-unreachable",
      page: (lang: string) => `${unreachableUrl}/devices/lonely-tv?lang=${lang}`,
    },
  ];

  for (const lang of LANGUAGES) {
    // 4K only in English: the layout is the 1080p one scaled, and each 4K screenshot is 33 MB of pixels to decode.
    for (const size of (Object.keys(SIZES) as SizeName[]).filter(
      (name) => name !== "tv-4k" || lang === "en",
    )) {
      it(`${lang} at ${size}: every screen fits, reads at ${MIN_TEXT_PX} px or more, and speaks ${lang}`, async () => {
        const context = await browser.newContext({ viewport: SIZES[size], locale: lang });
        try {
          const page: Page = await context.newPage();
          const errors: string[] = [];
          page.on("pageerror", (error) => errors.push(error.message));
          for (const target of targets) {
            await gotoPage(page, target.page(lang));
            await page.waitForSelector(`body[data-screen="${target.screen}"]`, { timeout: 15_000 });
            expect(await page.getAttribute("html", "lang")).toBe(lang);
            expect(await page.getAttribute("html", "dir")).toBe(lang === "ar" ? "rtl" : "ltr");
            const headline = await page
              .locator(target.screen === "code" ? "#code-headline" : "#headline")
              .textContent();
            const expected = HEADLINES[lang]?.[target.screen];
            if (expected) expect(headline).toMatch(expected);
            const layout = await page.evaluate<Layout>(MEASURE);
            const png = await page.screenshot();
            await writeFile(new URL(`${target.screen}-${size}-${lang}.png`, ARTIFACTS), png);
            expect({ screen: target.screen, ...layout }).toStrictEqual({
              screen: target.screen,
              scrollWidth: layout.innerWidth,
              scrollHeight: layout.innerHeight,
              innerWidth: SIZES[size].width,
              innerHeight: SIZES[size].height,
              outside: [],
              tiny: [],
              brokenParts: [],
              lowContrast: [],
            });
            if (target.screen === "code") {
              expect(await page.locator("#code .group").allTextContents()).toStrictEqual([
                "GTK",
                "8ZJ",
                "2LA",
              ]);
              expect(await page.locator("#url").textContent()).toBe(LONG_URI.replace("https://", ""));
              expect(decodeQr(png)).toBe(LONG_URI);
              expect(await page.locator("#countdown").textContent()).toMatch(/^\S+:\S\S$/);
            }
            if (target.screen === "error" || target.screen === "expired") {
              // A countdown to the retry or the next code, never the raw error text.
              expect(await page.locator("#retry").textContent()).toMatch(/^\S+:\S\S$/);
              expect(await page.locator("body").textContent()).not.toContain("network_error");
            }
          }
          expect(errors).toStrictEqual([]);
        } finally {
          await context.close();
        }
      });
    }
  }

  it("says what to check for a device it never hears from, once in its log (the screen: above)", () => {
    const log = display
      .stdout()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { msg: string; deviceId?: string })
      .filter((line) => line.msg.startsWith("no word from this device yet"));
    expect(log.map((line) => line.deviceId)).toStrictEqual([`states-${process.pid}-never-heard`]);
  });

  it("announces each screen change to screen readers, and the code with its address and time", async () => {
    const context = await browser.newContext({ viewport: SIZES["tv-720p"] });
    try {
      const page = await context.newPage();
      await gotoPage(page, `${url}/devices/states-${process.pid}-code?lang=en`);
      await page.waitForSelector('body[data-screen="code"]');
      expect(await page.getAttribute("#announcer", "aria-live")).toBe("polite");
      await expect
        .poll(() => page.locator("#announcer").textContent())
        .toMatch(
          new RegExp(
            `^Sign-in code GTK 8ZJ 2LA\\. Open ${LONG_URI.replace("https://", "").replace(/[./]/g, "\\$&")}\\. The code expires in \\d+ minutes\\.$`,
          ),
        );
    } finally {
      await context.close();
    }
  });

  it("keeps the QR code black on white and the text readable in forced colours, and does not animate under reduced motion", async () => {
    const context = await browser.newContext({
      viewport: SIZES["tv-720p"],
      forcedColors: "active",
      reducedMotion: "reduce",
    });
    try {
      const page = await context.newPage();
      await gotoPage(page, `${url}/devices/states-${process.pid}-code?lang=en`);
      await page.waitForSelector('body[data-screen="code"]');
      expect(decodeQr(await page.screenshot())).toBe(LONG_URI);
      const layout = await page.evaluate<Layout>(MEASURE);
      expect(layout.lowContrast).toStrictEqual([]);
      // The "new code" animation is off: set the class the page sets when the code changes, and look.
      await page.evaluate('document.getElementById("code").className = "code changed"');
      expect(
        await page.evaluate<string>('getComputedStyle(document.getElementById("code")).animationName'),
      ).toBe("none");
    } finally {
      await context.close();
    }
  });

  it("shrinks an address piece wider than a phone to 14 px, and breaks it only when even that is too wide", async () => {
    const context = await browser.newContext({ viewport: SIZES["phone-portrait"] });
    try {
      const page = await context.newPage();
      await gotoPage(page, `${url}/devices/${longHost.deviceId}?lang=en`);
      await page.waitForSelector('body[data-screen="code"]');
      const layout = async () => {
        const { outside, brokenParts, scrollWidth } = await page.evaluate<Layout>(MEASURE);
        return { outside, brokenParts, scrollWidth };
      };
      await expect.poll(layout).toStrictEqual({
        outside: [],
        // Only the host name, 57 characters, is wider than the phone at 14 px; every other piece stays whole.
        brokenParts: ["contoso-retail-europe-north-and-baltic-states-production"],
        scrollWidth: SIZES["phone-portrait"].width,
      });
      const urlSize = () =>
        page.evaluate<number>('parseFloat(getComputedStyle(document.getElementById("url")).fontSize)');
      expect(await urlSize()).toBe(MIN_TEXT_PX);
      expect(decodeQr(await page.screenshot())).toBe(longHost.uri);
      // On a TV the same address fits whole: every piece on one line, at more than the floor.
      await page.setViewportSize(SIZES["tv-720p"]);
      await expect
        .poll(layout)
        .toStrictEqual({ outside: [], brokenParts: [], scrollWidth: SIZES["tv-720p"].width });
      // The resize handler measures again: more than the floor once it has run.
      await expect.poll(urlSize).toBeGreaterThan(MIN_TEXT_PX);
    } finally {
      await context.close();
    }
  });
});
