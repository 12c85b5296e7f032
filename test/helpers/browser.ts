import { access } from "node:fs/promises";
import { chromium, type Browser } from "playwright-core";

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
