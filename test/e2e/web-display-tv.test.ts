/**
 * The web display on the screens people have, in Chromium against real Mosquitto: a TV browser too old for
 * clamp()/min()/max(), a phone zoomed to 200 %, a small phone in German; the states a household meets (paused
 * after `cancel`, signed out); the address as a link, a QR caption that says what the QR code does, and a "New
 * code" cue that does not move the code.
 */
import { mkdir, writeFile } from "node:fs/promises";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config/index.js";
import { startWebDisplay } from "../../src/display/web-display.js";
import { deviceTopics, type DisplayPayload, type StatePayload } from "../../src/mqtt/topics.js";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { LONG_URI, USER_CODE } from "../helpers/display-scenes.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";
import { startTcpGate } from "../helpers/tcp-gate.js";

const ARTIFACTS = new URL("../../test-artifacts/tv/", import.meta.url);
let browser: Browser;
beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});

/** Kept for a person to look at (test-artifacts/tv/). */
const keep = async (page: Page, name: string) =>
  writeFile(new URL(`${name}.png`, ARTIFACTS), await page.screenshot({ fullPage: true }));
afterAll(async () => {
  await browser?.close();
});

/** Every declaration an engine before Chromium 79 drops: those that use clamp(), min() or max(). */
function withoutModernMath(css: string): string {
  return css.replace(/[\w-]+\s*:[^;{}]*(?<![-\w])(?:clamp|min|max)\([^;{}]*;?/g, "");
}

/** Boxes of the visible text blocks of a screen, to check that none overlaps another or leaves the screen. */
const BOXES = `(() => [...document.querySelectorAll("header span, #banner, h1, #detail, .step, #url, #code, .expiry, figcaption, footer span")]
  .filter((node) => !node.closest("[hidden]") && node.textContent.trim() !== "")
  .map((node) => { const r = node.getBoundingClientRect(); return { name: node.id || node.className || node.tagName, left: r.left, top: r.top, right: r.right, bottom: r.bottom }; }))()`;

interface Box {
  name: string;
  left: number;
  top: number;
  right: number;
  bottom: number;
}

function overlaps(boxes: Box[]): string[] {
  const found: string[] = [];
  for (const [i, a] of boxes.entries())
    for (const b of boxes.slice(i + 1))
      if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
        found.push(`${a.name} / ${b.name}`);
  return found;
}

describe("the web display on TVs, phones and small screens (Chromium)", () => {
  const { bed, probe } = useTestBed();
  const tag = `tv-${process.pid}`;
  const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

  async function display(deviceIds: string[], env: Record<string, string> = {}) {
    const running = await startWebDisplay(
      loadDisplayConfig(
        { EDGE_SIGNIN_MQTT_URL: bed.broker.url, EDGE_SIGNIN_DISPLAY_PORT: "0", ...env },
        deviceIds,
      ),
      captureLogger().logger,
    );
    return running;
  }
  const retain = (topic: string, payload: unknown) =>
    probe.publish(topic, JSON.stringify(payload), { retain: true, qos: 1 });
  const prompt = (deviceId: string, userCode = USER_CODE, extra: Partial<DisplayPayload> = {}) =>
    retain(deviceTopics("edge-signin", deviceId).display, {
      deviceId,
      userCode,
      verificationUri: LONG_URI,
      message: "",
      issuedAt: iso(0),
      expiresAt: iso(900_000),
      ...extra,
    } satisfies DisplayPayload);
  const state = (deviceId: string, fields: Omit<StatePayload, "deviceId">) =>
    retain(deviceTopics("edge-signin", deviceId).state, { deviceId, ...fields });
  const online = (deviceId: string) =>
    probe.publish(deviceTopics("edge-signin", deviceId).availability, "online", { retain: true, qos: 1 });

  async function open(url: string, viewport: { width: number; height: number }, lang = "en") {
    const context = await browser.newContext({ viewport, locale: lang });
    const page = await context.newPage();
    return { page, close: () => context.close() };
  }
  const onScreen = (page: Page, name: string) =>
    page.waitForSelector(`body[data-screen="${name}"]`, { timeout: 15_000 });

  it("gives an engine without clamp()/min()/max() a large code and QR code at 1080p", async () => {
    const deviceId = `${tag}-old-engine`;
    await online(deviceId);
    await state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: iso(900_000) });
    await prompt(deviceId);
    const running = await display([deviceId]);
    try {
      const { page, close } = await open(running.url, { width: 1920, height: 1080 });
      try {
        const original = await (await fetch(`${running.url}/assets/display.css`)).text();
        const stripped = withoutModernMath(original);
        expect(stripped).not.toMatch(/(?<![-\w])(?:clamp|min|max)\(/);
        await page.route("**/assets/display.css", (route) =>
          route.fulfill({ contentType: "text/css", body: stripped }),
        );
        await gotoPage(page, `${running.url}/devices/${deviceId}`);
        await onScreen(page, "code");
        const measured = await page.evaluate<{ code: number; qr: number; gap: number; body: number }>(`({
          code: parseFloat(getComputedStyle(document.getElementById("code")).fontSize),
          qr: document.getElementById("qr").getBoundingClientRect().width,
          gap: parseFloat(getComputedStyle(document.querySelectorAll("#code .group")[1]).marginLeft),
          body: parseFloat(getComputedStyle(document.body).fontSize),
        })`);
        // Before, such an engine got a 16 px code with no group spacing and a 162 px QR code.
        await keep(page, "old-engine-1080p");
        expect(measured.code).toBeGreaterThanOrEqual(100);
        expect(measured.qr).toBeGreaterThanOrEqual(400);
        expect(measured.gap).toBeGreaterThan(measured.code * 0.3);
        expect(measured.body).toBeGreaterThanOrEqual(32);
        const boxes = await page.evaluate<Box[]>(BOXES);
        expect(overlaps(boxes)).toStrictEqual([]);
        expect(boxes.filter((b) => b.right > 1921 || b.bottom > 1081).map((b) => b.name)).toStrictEqual([]);
      } finally {
        await close();
      }
    } finally {
      await running.stop();
    }
  });

  it("scrolls at 200 % zoom on a phone instead of cutting the page off", async () => {
    const deviceId = `${tag}-zoom`;
    await online(deviceId);
    await state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: iso(900_000) });
    await prompt(deviceId);
    const running = await display([deviceId]);
    try {
      // A 375x667 phone zoomed to 200 % lays the page out in 188x334 CSS pixels.
      const { page, close } = await open(running.url, { width: 188, height: 334 }, "de");
      try {
        await gotoPage(page, `${running.url}/devices/${deviceId}?lang=de`);
        await onScreen(page, "code");
        expect(
          await page.evaluate<number>("document.scrollingElement.scrollHeight - innerHeight"),
        ).toBeGreaterThan(0);
        // As a person would: the wheel (or a swipe); overflow: hidden used to block it (script could still scroll).
        await page.mouse.move(94, 167);
        for (let i = 0; i < 5; i++) await page.mouse.wheel(0, 400);
        await expect
          .poll(() => page.evaluate<number>("document.getElementById('qr').getBoundingClientRect().bottom"), {
            timeout: 5_000,
          })
          .toBeLessThanOrEqual(334 + 1);
      } finally {
        await close();
      }
    } finally {
      await running.stop();
    }
  });

  for (const [lang, size] of [
    ["de", { width: 320, height: 568 }],
    ["en", { width: 1920, height: 1080 }],
    ["ja", { width: 390, height: 844 }],
  ] as const) {
    it(`says sign-in is paused after a cancel, in ${lang} at ${size.width}x${size.height}, nothing overlapping`, async () => {
      const deviceId = `${tag}-idle-${lang}`;
      await online(deviceId);
      await state(deviceId, { state: "signed_out", since: iso(0), idle: true });
      const running = await display([deviceId]);
      try {
        const { page, close } = await open(running.url, size, lang);
        try {
          await gotoPage(page, `${running.url}/devices/${deviceId}?lang=${lang}`);
          await onScreen(page, "idle");
          await keep(page, `idle-${size.width}x${size.height}-${lang}`);
          const headline = await page.locator("#headline").textContent();
          expect(headline).toBe(
            { de: "Die Anmeldung ist angehalten", en: "Sign-in is paused", ja: "サインインは一時停止中です" }[
              lang
            ],
          );
          expect(await page.locator("#detail").textContent()).not.toBe("");
          const boxes = await page.evaluate<Box[]>(BOXES);
          expect(overlaps(boxes)).toStrictEqual([]);
          expect(
            boxes.filter((b) => b.right > size.width + 1 || b.bottom > size.height + 1).map((b) => b.name),
          ).toStrictEqual([]);
          // A screen that may stay up for hours dims and drifts (after two minutes), against burn-in.
          expect(
            await page.evaluate<string>('getComputedStyle(document.querySelector("main")).animationName'),
          ).toBe("burn-in-dim, burn-in-drift");
        } finally {
          await close();
        }
      } finally {
        await running.stop();
      }
    });
  }

  it("keeps a valid code under a plain banner when the screen loses the broker, in German at 320x568", async () => {
    const deviceId = `${tag}-banner`;
    await online(deviceId);
    await state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: iso(900_000) });
    await prompt(deviceId);
    const gate = await startTcpGate(bed.broker.url);
    const running = await display([deviceId], { EDGE_SIGNIN_MQTT_URL: gate.url });
    try {
      const { page, close } = await open(running.url, { width: 320, height: 568 }, "de");
      try {
        await gotoPage(page, `${running.url}/devices/${deviceId}?lang=de`);
        await onScreen(page, "code");
        // The broker goes out of reach of this screen (the agent, and the code, are fine).
        await gate.close();
        await page.waitForSelector("#banner:not([hidden])", { timeout: 15_000 });
        expect(await page.locator("#banner").textContent()).toBe(
          "Die Anzeige verbindet sich neu. Der Code gilt weiter.",
        );
        expect(await page.getAttribute("body", "data-screen")).toBe("code");
        await keep(page, "banner-320x568-de");
        expect(overlaps(await page.evaluate<Box[]>(BOXES))).toStrictEqual([]);
      } finally {
        await close();
      }
    } finally {
      await running.stop();
      await gate.close();
    }
  });

  it("links the address, says the QR code opens the page only, and keeps the code still under 'New code'", async () => {
    const deviceId = `${tag}-phone`;
    await online(deviceId);
    await state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: iso(900_000) });
    await prompt(deviceId);
    const running = await display([deviceId]);
    try {
      const { page, close } = await open(running.url, { width: 390, height: 844 });
      try {
        await gotoPage(page, `${running.url}/devices/${deviceId}`);
        await onScreen(page, "code");
        expect(await page.locator("a#url").getAttribute("href")).toBe(LONG_URI);
        // No verification_uri_complete (Entra): the QR code holds the address, not the code.
        expect(await page.locator("#qr-caption").textContent()).toBe("or scan the QR code to open the page");
        // Where layout puts the code (offsetTop ignores the cue's brief scale animation).
        const codeTop = () => page.evaluate<number>('document.getElementById("code").offsetTop');
        const before = await codeTop();
        await prompt(deviceId, "WDJBMJHTX");
        await expect.poll(() => page.locator("#new-code").isVisible(), { timeout: 10_000 }).toBe(true);
        expect(await codeTop()).toBe(before);
        // A provider that gives a complete URI: the QR code fills the code in, and the caption says scan.
        const complete = `${LONG_URI}?code=WDJBMJHTY`;
        await prompt(deviceId, "WDJBMJHTY", { verificationUriComplete: complete });
        await expect
          .poll(() => page.locator("#qr-caption").textContent(), { timeout: 10_000 })
          .toBe("or scan the QR code");
        expect(await page.locator("a#url").getAttribute("href")).toBe(complete);
      } finally {
        await close();
      }
    } finally {
      await running.stop();
    }
  });

  it("says 'Signed out' after a sign-out, then shows the next code without a 'New code' cue", async () => {
    const deviceId = `${tag}-signed-out`;
    const topics = deviceTopics("edge-signin", deviceId);
    await online(deviceId);
    await state(deviceId, { state: "awaiting_user", since: iso(0), expiresAt: iso(900_000) });
    await prompt(deviceId);
    const running = await display([deviceId]);
    try {
      const { page, close } = await open(running.url, { width: 320, height: 568 }, "de");
      try {
        await gotoPage(page, `${running.url}/devices/${deviceId}?lang=de`);
        await onScreen(page, "code");
        // Someone signs in with it, later signs out; the agent shows the next code at once.
        await probe.publish(topics.display, "", { retain: true, qos: 1 });
        await state(deviceId, { state: "signed_in", since: iso(0) });
        await onScreen(page, "signed-in-neutral");
        await probe.publish(
          topics.event("signed_out"),
          JSON.stringify({
            id: `${deviceId}-1`,
            type: "signed_out",
            deviceId,
            at: iso(0),
            reason: "requested",
            message: "signed out",
          }),
          { qos: 1 },
        );
        await state(deviceId, { state: "signed_out", since: iso(0) });
        await prompt(deviceId, "WDJBMJHTX", { issuedAt: iso(100) });
        await onScreen(page, "signed-out");
        expect(await page.locator("#headline").textContent()).toBe("Abgemeldet");
        await keep(page, "signed-out-320x568-de");
        expect(overlaps(await page.evaluate<Box[]>(BOXES))).toStrictEqual([]);
        await onScreen(page, "code");
        expect(await page.locator("#code").getAttribute("data-code")).toBe("WDJ BMJ HTX");
        expect(await page.locator("#new-code").isVisible()).toBe(false);
      } finally {
        await close();
      }
    } finally {
      await running.stop();
    }
  });
});
