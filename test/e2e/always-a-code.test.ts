/**
 * A TV left on with nobody signing in: each code that expires unused is replaced at once, whatever the retry
 * settings, so a person who walks up finds a code and not "New code in 4:10". The agent is the shipped bundle,
 * the page is the web display in Chromium, the provider issues codes that live a few seconds.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDisplayConfig } from "../../src/config/index.js";
import { MIN_CODE_GAP_MS } from "../../src/agent.js";
import { startWebDisplay } from "../../src/display/web-display.js";
import type { EventPayload } from "../../src/mqtt/topics.js";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { captureLogger, useTestBed } from "../helpers/fixture.js";

const TTL_SECONDS = 6;
const EXPIRIES = 4;
/** A bound on how long the page may go without a code after one expires: fetching a code takes well under 1 s. */
const NO_CODE_BOUND_MS = 4_000;

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

const shownCode = async (page: Page) => (await page.locator("#code .group").allTextContents()).join("-");

describe("a TV left on shows a code again within seconds of each expiry (shipped bundle, Chromium)", () => {
  const used = useTestBed({ idp: { deviceCodeTtlSeconds: TTL_SECONDS } });

  it(`replaces each of ${EXPIRIES} unused codes at once, with one device-code request per code`, async () => {
    // Long retry pauses: before, the second expiry in a row waited 5-10 s, the third 10-20 s.
    const agent = await used.startAgent({
      EDGE_SIGNIN_RETRY_INITIAL_SECONDS: "10",
      EDGE_SIGNIN_RETRY_MAX_SECONDS: "20",
    });
    const display = await startWebDisplay(
      loadDisplayConfig({ EDGE_SIGNIN_MQTT_URL: used.bed.broker.url, EDGE_SIGNIN_DISPLAY_PORT: "0" }, [
        agent.env["EDGE_SIGNIN_DEVICE_ID"] ?? "",
      ]),
      captureLogger().logger,
    );
    used.afterThisTest(() => display.stop());
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    used.afterThisTest(() => page.close());
    await gotoPage(page, `${display.url}/devices/${agent.env["EDGE_SIGNIN_DEVICE_ID"]}`);

    await page.waitForSelector('body[data-screen="code"]', { timeout: 30_000 });
    const codes = [await shownCode(page)];
    for (let expiry = 1; expiry <= EXPIRIES; expiry++) {
      const expired = await agent.event("code_expired", (TTL_SECONDS + 10) * 1000);
      expect(expired.userCode).toBe(codes.at(-1));
      // The agent asks for the next code at once (codes live longer than MIN_CODE_GAP_MS here).
      expect(Date.parse(expired.nextCodeAt) - Date.parse(expired.expiredAt)).toBeLessThan(1_000);
      // And the page has it up again, a different code, soon after.
      await expect
        .poll(() => shownCode(page), { timeout: NO_CODE_BOUND_MS, interval: 100 })
        .not.toBe(codes.at(-1));
      await page.waitForSelector('body[data-screen="code"]', { timeout: NO_CODE_BOUND_MS });
      codes.push(await shownCode(page));
    }
    expect(new Set(codes).size).toBe(EXPIRIES + 1);
    // Bounded load: one device-code request per code, none in between (both read at the same moment; the
    // next code may be on its way after the last expiry).
    const prompts = agent.probe.all(agent.topics.display).filter((m) => m.payload.length > 0).length;
    const expiries = agent.probe.all(agent.topics.event("code_expired")).length;
    expect(expiries).toBeGreaterThanOrEqual(EXPIRIES);
    expect(prompts).toBeGreaterThanOrEqual(expiries);
    expect(prompts).toBeLessThanOrEqual(expiries + 1);
    const failed = agent.probe.all(agent.topics.event("sign_in_failed"));
    expect(failed.map((m) => m.json<EventPayload<"sign_in_failed">>().reason)).toStrictEqual([]);
    expect(TTL_SECONDS * 1000).toBeGreaterThan(MIN_CODE_GAP_MS);
  });
});
