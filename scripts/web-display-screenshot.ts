/**
 * Makes the README's pictures of the web display: every screen (test/helpers/display-scenes.ts) from a real
 * display server in Chromium, fed over an embedded broker, at a 720p TV, a phone held upright, a phone on its side
 * and portrait signage, in a few languages. Writes docs/web-display.png (the code screen at 1280x720) and
 * docs/screens/{screen}-{size}-{lang}.png. Run: npx tsx scripts/web-display-screenshot.ts
 */
import { mkdir, writeFile } from "node:fs/promises";
import mqtt from "mqtt";
import { loadDisplayConfig } from "../src/config/index.js";
import { startEmbeddedBroker } from "../src/dev/embedded-broker.js";
import { PICTURED_SCREENS } from "../src/display/screen.js";
import { startWebDisplay } from "../src/display/web-display.js";
import { createLogger } from "../src/util/logger.js";
import { launchChromium } from "../test/helpers/browser.js";
import { scenes } from "../test/helpers/display-scenes.js";

const DOCS = new URL("../docs/", import.meta.url);
const SCREENS = new URL("screens/", DOCS);
const SIZES = {
  tv: { width: 1280, height: 720 },
  phone: { width: 390, height: 844 },
  "phone-landscape": { width: 844, height: 390 },
  portrait: { width: 1080, height: 1920 },
} as const;
/** Every screen on a TV in English; the code screen in every size and in German, Japanese and Arabic. */
const SHOTS: Array<{ screen: string; size: keyof typeof SIZES; lang: string }> = [
  ...PICTURED_SCREENS.map((screen) => ({ screen, size: "tv" as const, lang: "en" })),
  { screen: "code", size: "phone", lang: "en" },
  { screen: "code", size: "phone-landscape", lang: "en" },
  { screen: "code", size: "portrait", lang: "de" },
  { screen: "code", size: "tv", lang: "ja" },
  { screen: "code", size: "phone", lang: "ar" },
  { screen: "error", size: "phone", lang: "fr" },
];

const all = scenes("living-room-tv");
const broker = await startEmbeddedBroker();
const env = {
  // The embedded broker speaks MQTT 3.1.1.
  EDGE_SIGNIN_MQTT_URL: broker.url,
  EDGE_SIGNIN_MQTT_PROTOCOL_VERSION: "4",
  EDGE_SIGNIN_DISPLAY_PORT: "0",
  EDGE_SIGNIN_DISPLAY_SIGNED_IN_SECONDS: "600",
  EDGE_SIGNIN_DISPLAY_NEVER_HEARD_SECONDS: "1",
  EDGE_SIGNIN_DISPLAY_PRODUCT_NAME: "Contoso Kiosk",
};
const logger = createLogger("warn");
const display = await startWebDisplay(
  loadDisplayConfig(
    env,
    all.map((scene) => scene.deviceId),
  ),
  logger,
);
const unreachable = await startWebDisplay(
  loadDisplayConfig({ ...env, EDGE_SIGNIN_MQTT_URL: "mqtt://127.0.0.1:1" }, ["living-room-tv"]),
  logger,
);
const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
const publish = async (topic: string, payload: string, retain: boolean) => {
  await publisher.publishAsync(topic, payload, { retain, qos: 1 });
};
for (const scene of all) await scene.publish(publish, "retained");
// Give the display's watchers a moment to subscribe: the events are not retained.
await new Promise((resolve) => setTimeout(resolve, 1_500));
for (const scene of all) await scene.publish(publish, "live");

const browser = await launchChromium();
try {
  await mkdir(SCREENS, { recursive: true });
  for (const shot of SHOTS) {
    const page = await browser.newPage({ viewport: SIZES[shot.size] });
    const scene = all.find((candidate) => candidate.screen === shot.screen);
    const base = scene ? display.url : unreachable.url;
    await page.goto(`${base}/devices/${scene?.deviceId ?? "living-room-tv"}?lang=${shot.lang}`);
    await page.waitForSelector(`body[data-screen="${shot.screen}"]`, { timeout: 15_000 });
    const png = await page.screenshot();
    const file = new URL(`${shot.screen}-${shot.size}-${shot.lang}.png`, SCREENS);
    await writeFile(file, png);
    if (shot.screen === "code" && shot.size === "tv" && shot.lang === "en")
      await writeFile(new URL("web-display.png", DOCS), png);
    process.stdout.write(`wrote ${file.pathname}\n`);
    await page.close();
  }
} finally {
  await browser.close();
  await publisher.endAsync();
  await display.stop();
  await unreachable.stop();
  await broker.close();
}
