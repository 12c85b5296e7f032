/**
 * The web display in a real browser (Debian's Chromium through playwright-core), against real Mosquitto,
 * a real agent and the local OpenID provider: what a person in front of the TV sees, and what they do.
 */
import { mkdir, writeFile } from "node:fs/promises";
import jsqr from "jsqr";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../src/agent.js";
import { loadDisplayConfig } from "../../src/config/index.js";
import { startWebDisplay, type RunningWebDisplay } from "../../src/display/web-display.js";
import { deviceTopics, type DisplayPayload, type EventPayload } from "../../src/mqtt/topics.js";
import { gotoPage, launchChromium } from "../helpers/browser.js";
import { captureLogger, useTestBed, type UsedTestBed } from "../helpers/fixture.js";

const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
const TV = { width: 1280, height: 720 };
const FULL_HD = { width: 1920, height: 1080 };

let browser: Browser;
let context: BrowserContext;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
  // The local identity provider's certificate is self-signed; a person would click through the warning.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: TV });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await context?.close();
  await browser?.close();
});

/** Starts the web display for these devices on the bed's broker, as `edge-signin display --web` would. */
async function startDisplay(
  bed: UsedTestBed["bed"],
  deviceIds: string[],
  port = 0,
): Promise<RunningWebDisplay> {
  const config = loadDisplayConfig(
    { EDGE_SIGNIN_MQTT_URL: bed.broker.url, EDGE_SIGNIN_DISPLAY_PORT: String(port) },
    deviceIds,
  );
  const display = await startWebDisplay(config, captureLogger().logger);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await display.stop();
  };
  cleanups.push(stop);
  return { url: display.url, refused: display.refused, stop };
}

async function startAgent(bed: UsedTestBed["bed"], overrides: Record<string, string> = {}): Promise<Agent> {
  const agent = new Agent({ config: bed.config(overrides), logger: captureLogger().logger });
  cleanups.push(() => agent.stop());
  await agent.start();
  return agent;
}

/** Opens a device's page and fails the test on any script error in it. */
async function openDisplayPage(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  cleanups.push(() => page.close());
  await gotoPage(page, url);
  // A value on window survives only as long as the document does: proof that nothing reloaded the page.
  await markDocument(page);
  return { page, errors };
}

/** Page scripts are strings here: the tests' TypeScript has no DOM library, and needs none. */
const markDocument = (page: Page) => page.evaluate("window.sameDocument = true");

const stillSameDocument = (page: Page) => page.evaluate<boolean>("window.sameDocument === true");

/** The code as shown, its reading groups joined with `-` as the test provider writes it (`ABCD-EFGH`). */
const shownCode = async (page: Page) => (await page.locator("#code .group").allTextContents()).join("-");

const screen = (page: Page, name: string, timeout = 30_000) =>
  page.waitForSelector(`body[data-screen="${name}"]`, { timeout });

async function screenshot(page: Page, name: string): Promise<Buffer> {
  const png = await page.screenshot();
  await writeFile(new URL(`${name}.png`, ARTIFACTS), png);
  return png;
}

function decodeQr(png: Buffer): string | undefined {
  const image = PNG.sync.read(png);
  // jsqr is CommonJS; under NodeNext its typed default export is `.default` (also present at run time).
  const found = jsqr.default(new Uint8ClampedArray(image.data), image.width, image.height);
  return found?.data;
}

async function fitsWithoutScrolling(page: Page): Promise<{ scrollHeight: number; innerHeight: number }> {
  return page.evaluate<{ scrollHeight: number; innerHeight: number }>(
    "({ scrollHeight: document.scrollingElement.scrollHeight, innerHeight: window.innerHeight })",
  );
}

/** The identity provider's own pages, used as a person would: type the code, confirm, log in. */
async function signInOnProviderPages(
  page: Page,
  url: string,
  userCode: string,
  login: string,
): Promise<void> {
  await gotoPage(page, url);
  const codeField = page.locator('input[name="user_code"]');
  // With verification_uri_complete the code is already filled in; a person checks it and continues.
  if ((await codeField.count()) > 0 && (await codeField.inputValue()) === "") await codeField.fill(userCode);
  if ((await codeField.count()) > 0) await page.getByRole("button", { name: "Continue" }).click();
  await expect.poll(() => page.title()).toBe("Confirm Device");
  await expect(page.locator("code").textContent()).resolves.toBe(userCode);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("correct horse battery staple");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await expect.poll(() => page.title(), { timeout: 15_000 }).toBe("Sign-in Success");
}

/**
 * How long a page may take to come back after the broker or the display server returns: the display reconnects
 * with the broker backoff (doubling to 30 s), and on a busy CI machine (another test file's containers and browser
 * beside this one) one wait of 30 s was not enough. A bound, not a speed assertion.
 */
const RECOVERY_MS = 60_000;

describe("the web display, in Chromium, with a real agent", () => {
  const { bed, probe } = useTestBed();

  it("shows the agent's code and a QR code of the URL; a sign-in in the same browser turns it to 'Signed in as'", async () => {
    const deviceId = `tv-web-${process.pid}-1`;
    const topics = deviceTopics("edge-signin", deviceId);
    const display = await startDisplay(bed, [deviceId]);
    const { page, errors } = await openDisplayPage(`${display.url}/devices/${deviceId}`);
    // The signed-in screen names the person only when the retained state carries the account (STATE_ACCOUNT).
    await startAgent(bed, { EDGE_SIGNIN_DEVICE_ID: deviceId, EDGE_SIGNIN_STATE_ACCOUNT: "true" });
    const published = (await probe.next(topics.display, (m) => m.payload.length > 0)).json<DisplayPayload>();

    await screen(page, "code");
    const userCode = await shownCode(page);
    expect(userCode).toBe(published.userCode);
    // Without the scheme: every browser adds it.
    expect(await page.locator("#url").textContent()).toBe(
      published.verificationUri.replace(/^https:\/\//, ""),
    );
    expect(await page.locator("#countdown").textContent()).toMatch(/^\d+:\d\d$/);
    // Screen readers hear the code once, with where to enter it, from the polite live region.
    await expect
      .poll(() => page.locator("#announcer").textContent())
      .toContain(published.userCode.replace("-", " "));

    const qrUrl = decodeQr(await screenshot(page, "web-display-code-1280x720"));
    expect(qrUrl).toBe(published.verificationUriComplete ?? published.verificationUri);
    expect(await fitsWithoutScrolling(page)).toMatchObject({ scrollHeight: TV.height });
    await page.setViewportSize(FULL_HD);
    expect(decodeQr(await screenshot(page, "web-display-code-1920x1080"))).toBe(qrUrl);
    expect(await fitsWithoutScrolling(page)).toMatchObject({ scrollHeight: FULL_HD.height });
    await page.setViewportSize(TV);

    const phone = await context.newPage();
    cleanups.push(() => phone.close());
    await signInOnProviderPages(phone, qrUrl ?? "", userCode ?? "", "carol");

    await screen(page, "signed-in");
    const event = (await probe.next(topics.event("authenticated"))).json<EventPayload<"authenticated">>();
    // The name is isolated (FSI...PDI) so that it keeps its place in a right-to-left sentence.
    expect(await page.locator("#headline").textContent()).toBe(
      `Signed in as \u2068${event.account.name}\u2069`,
    );
    expect(event.account.name).toBe("Carol");
    await screenshot(page, "web-display-signed-in");
    expect(await stillSameDocument(page)).toBe(true);
    expect(errors).toStrictEqual([]);
  });

  it(
    "recovers by itself after a broker restart and after a display-server restart, without a reload",
    async () => {
      const deviceId = `tv-web-${process.pid}-2`;
      const topics = deviceTopics("edge-signin", deviceId);
      const first = await startDisplay(bed, [deviceId]);
      const port = Number(new URL(first.url).port);
      const { page, errors } = await openDisplayPage(`${first.url}/devices/${deviceId}`);
      const agent = await startAgent(bed, { EDGE_SIGNIN_DEVICE_ID: deviceId });
      await screen(page, "code");

      // Stopped as a restart stops it: Mosquitto first sends every client's will, the agent's `offline` among
      // them. The device did not go offline; the broker did, and the screen must say so.
      await bed.broker.stop("shutdown");
      await page.waitForSelector("#banner:not([hidden])", { timeout: RECOVERY_MS });
      // The code stays: a person can still sign in with it (the agent talks to the provider, not the broker).
      expect(await page.locator("#banner").textContent()).toBe(
        "This screen is reconnecting. The code still works.",
      );
      expect(await page.locator("body").getAttribute("data-screen")).toBe("code");
      await screenshot(page, "web-display-broker-down");
      await bed.broker.start();
      await page.waitForSelector("#banner[hidden]", { state: "attached", timeout: RECOVERY_MS });
      const shown = (
        await probe.next(topics.display, (m) => m.payload.length > 0, RECOVERY_MS)
      ).json<DisplayPayload>();
      await screen(page, "code");
      await expect.poll(() => shownCode(page), { timeout: RECOVERY_MS }).toBe(shown.userCode);

      await first.stop();
      await page.waitForSelector('body[data-connection="reconnecting"]', { timeout: 30_000 });
      expect(await page.locator("#banner").textContent()).toBe("Reconnecting to the display server…");
      await screenshot(page, "web-display-server-down");
      await startDisplay(bed, [deviceId], port);
      await page.waitForSelector('body[data-connection="open"]', { timeout: 30_000 });
      await page.waitForSelector("#banner[hidden]", { state: "attached" });
      await screen(page, "code");

      // The agent going away is shown too: its last will (or goodbye) is `offline`.
      await agent.stop();
      await screen(page, "offline");
      expect(await page.locator("#headline").textContent()).toBe("This device is offline");
      await screenshot(page, "web-display-offline");
      expect(await stillSameDocument(page)).toBe(true);
      expect(errors).toStrictEqual([]);
    },
    4 * RECOVERY_MS,
  );
});

describe("the web display when codes expire", () => {
  const { bed } = useTestBed({ idp: { deviceCodeTtlSeconds: 3 }, probe: false });

  it("shows the next code without a reload", async () => {
    const deviceId = `tv-web-${process.pid}-3`;
    const display = await startDisplay(bed, [deviceId]);
    const { page, errors } = await openDisplayPage(`${display.url}/devices/${deviceId}`);
    await startAgent(bed, { EDGE_SIGNIN_DEVICE_ID: deviceId });
    await screen(page, "code");
    const first = await shownCode(page);
    await expect.poll(() => shownCode(page), { timeout: 30_000 }).not.toBe(first);
    await screen(page, "code");
    const second = await shownCode(page);
    // The cue for a person halfway through typing the old code.
    expect(await page.locator("#new-code").isVisible()).toBe(true);
    expect(await page.locator("#code").getAttribute("class")).toBe("code changed");
    expect(second).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(second).not.toBe(first);
    expect(await stillSameDocument(page)).toBe(true);
    expect(errors).toStrictEqual([]);
  });
});

describe("the web display's screens for every state of the topic contract", () => {
  const { bed, probe } = useTestBed();

  it("shows waiting, error and offline screens, ignores malformed messages, and lists several devices", async () => {
    const [a, b] = [`panel-${process.pid}-a`, `panel-${process.pid}-b`];
    const topics = deviceTopics("edge-signin", a);
    const display = await startDisplay(bed, [a, b]);
    const { page, errors } = await openDisplayPage(display.url);
    expect(await page.locator("a").allTextContents()).toStrictEqual([a, b]);
    await page.getByRole("link", { name: a }).click();
    await markDocument(page);

    const since = new Date().toISOString();
    await probe.publish(topics.availability, "online", { retain: true });
    await probe.publish(topics.state, JSON.stringify({ state: "signed_out", since, deviceId: a }), {
      retain: true,
    });
    await screen(page, "waiting");
    expect(await page.locator("#headline").textContent()).toBe("Getting a sign-in code…");
    await screenshot(page, "web-display-waiting");

    const retryAt = new Date(Date.now() + 90_000).toISOString();
    await probe.publish(
      topics.state,
      JSON.stringify({
        state: "error",
        since,
        deviceId: a,
        reason: "network",
        message: "The identity provider cannot be reached.",
        retryAt,
      }),
      { retain: true },
    );
    await screen(page, "error");
    // Plain words on a TV, never the agent's raw error text (that is in its log).
    expect(await page.locator("#headline").textContent()).toBe("Can’t reach the sign-in service");
    expect(await page.locator("#detail").textContent()).toBe("");
    expect(await page.locator("#retry-label").textContent()).toBe("Trying again in");
    // Counting down to retryAt, however long the screen took to come: at most the 90 s it started from, at least
    // what is left now.
    const retry = (await page.locator("#retry").textContent()) ?? "";
    const left = Math.floor((Date.parse(retryAt) - Date.now()) / 1000);
    expect(retry).toMatch(/^\d+:\d\d$/);
    const [minutes = NaN, seconds = NaN] = retry.split(":").map(Number);
    expect(minutes * 60 + seconds).toBeLessThanOrEqual(90);
    expect(minutes * 60 + seconds).toBeGreaterThanOrEqual(left);
    await screenshot(page, "web-display-error");

    await probe.publish(topics.display, JSON.stringify({ userCode: 42 }), { retain: true });
    await probe.publish(topics.availability, "offline", { retain: true });
    await screen(page, "offline");
    expect(await stillSameDocument(page)).toBe(true);

    // Unknown devices get a page naming the ones this server shows, not a blank screen.
    const missing = await context.request.get(`${display.url}/devices/nope`);
    expect(missing.status()).toBe(404);
    expect(await missing.text()).toContain(a);
    expect(errors).toStrictEqual([]);
    for (const topic of [topics.availability, topics.state, topics.display]) {
      await probe.publish(topic, "", { retain: true });
    }
  });
});
