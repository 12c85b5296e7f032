import { access } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium, type Browser, type Page, type Response } from "playwright-core";

/** Debian's package; nothing in the tests downloads a browser. `EDGE_SIGNIN_TEST_CHROMIUM` points elsewhere. */
export const CHROMIUM_PATH = process.env["EDGE_SIGNIN_TEST_CHROMIUM"] ?? "/usr/bin/chromium";

/**
 * Headless Chromium for the web display tests. When no browser can be started the tests fail, naming the
 * fix: a browser test that skips would let CI pass without ever having looked at the page.
 */
export async function launchChromium(): Promise<Browser> {
  try {
    await access(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `No Chromium at ${CHROMIUM_PATH}: the web display tests need a real browser. ` +
        "Install it with `sudo apt-get install chromium` (Debian/Ubuntu; .ci/run does this), " +
        "or set EDGE_SIGNIN_TEST_CHROMIUM to a Chromium or Chrome binary.",
    );
  }
  try {
    return await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      timeout: 60_000,
    });
  } catch (error) {
    throw new Error(
      `Chromium at ${CHROMIUM_PATH} did not start (${error instanceof Error ? error.message : String(error)}). ` +
        "Reinstall it with `sudo apt-get install --reinstall chromium`.",
      { cause: error },
    );
  }
}

const NETWORK_CHANGED_RETRIES = 3;

/**
 * `page.goto`, tried again (at most three times) when Chromium aborts the navigation with
 * `net::ERR_NETWORK_CHANGED`. Chromium watches the machine's network interfaces and fails every request in
 * flight when one appears or goes; a container engine adds and removes one for every container that starts or
 * stops, and other test files start containers while a browser test runs. Any other failure is thrown at once.
 */
export async function gotoPage(
  page: Page,
  url: string,
  options?: Parameters<Page["goto"]>[1],
): Promise<Response | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url, options);
    } catch (error) {
      const changed = error instanceof Error && error.message.includes("net::ERR_NETWORK_CHANGED");
      if (!changed || attempt >= NETWORK_CHANGED_RETRIES) throw error;
      await sleep(200 * attempt);
    }
  }
}
