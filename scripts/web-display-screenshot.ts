/**
 * Makes docs/web-display.png, the README's picture of the web display: a real display server in Chromium at
 * 1280x720 (a 720p TV), fed an example prompt over an embedded broker. Run: npx tsx scripts/web-display-screenshot.ts
 */
import { mkdir, writeFile } from "node:fs/promises";
import mqtt from "mqtt";
import { loadDisplayConfig } from "../src/config.js";
import { startEmbeddedBroker } from "../src/dev/embedded-broker.js";
import { startWebDisplay } from "../src/display/web-display.js";
import { createLogger } from "../src/logger.js";
import { deviceTopics, type DisplayPayload } from "../src/mqtt/topics.js";
import { launchChromium } from "../test/helpers/browser.js";

const DEVICE = "living-room-tv";
const OUT = new URL("../docs/web-display.png", import.meta.url);

const broker = await startEmbeddedBroker();
const display = await startWebDisplay(
  // The embedded broker speaks MQTT 3.1.1.
  loadDisplayConfig(
    {
      EDGE_SIGNIN_MQTT_URL: broker.url,
      EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4",
      EDGE_SIGNIN_DISPLAY_PORT: "0",
    },
    [DEVICE],
  ),
  createLogger("warn"),
);
const topics = deviceTopics("edge-signin", DEVICE);
const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
const now = Date.now();
const prompt: DisplayPayload = {
  deviceId: DEVICE,
  userCode: "KXWP-RTMB",
  verificationUri: "https://contoso.ciamlogin.com/common/oauth2/deviceauth",
  message:
    "To sign in, use a web browser to open the page https://contoso.ciamlogin.com/common/oauth2/deviceauth and enter the code KXWP-RTMB to authenticate.",
  issuedAt: new Date(now).toISOString(),
  expiresAt: new Date(now + 14 * 60_000 + 32_000).toISOString(),
};
await publisher.publishAsync(topics.availability, "online", { retain: true });
await publisher.publishAsync(
  topics.state,
  JSON.stringify({
    state: "awaiting_user",
    since: prompt.issuedAt,
    deviceId: DEVICE,
    expiresAt: prompt.expiresAt,
  }),
  { retain: true },
);
await publisher.publishAsync(topics.display, JSON.stringify(prompt), { retain: true });

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${display.url}/devices/${DEVICE}`);
  await page.waitForSelector('body[data-screen="code"]');
  await mkdir(new URL(".", OUT), { recursive: true });
  await writeFile(OUT, await page.screenshot());
  process.stdout.write(`wrote ${OUT.pathname}\n`);
} finally {
  await browser.close();
  await publisher.endAsync();
  await display.stop();
  await broker.close();
}
