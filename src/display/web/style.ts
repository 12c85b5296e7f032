/**
 * Built for a TV seen from three metres: white on black, sizes in viewport units so the same page fills
 * 1280x720 and 1920x1080 without scrolling, system fonts only (nothing to download on an offline network).
 */
export const STYLE_CSS = `
*, *::before, *::after { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body {
  background: #000;
  color: #fff;
  font-family: "DejaVu Sans", "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  font-size: min(2.6vw, 4.6vh);
  line-height: 1.25;
  display: flex;
  flex-direction: column;
}
[hidden] { display: none !important; }
main { flex: 1; display: flex; align-items: center; justify-content: center; padding: 3vh 4vw; min-height: 0; }
h1 { font-size: 1.5em; margin: 0 0 0.6em; font-weight: 700; }
p { margin: 0; }

.banner {
  background: #ffd400;
  color: #000;
  font-weight: 700;
  text-align: center;
  padding: 0.4em 1em;
}

.code-screen { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4vw; align-items: center; width: 100%; }
.step { color: #ddd; }
.url { font-weight: 700; color: #7fd4ff; overflow-wrap: anywhere; margin: 0.2em 0 0.8em; }
.code {
  font-family: "DejaVu Sans Mono", "Cascadia Mono", Consolas, "Liberation Mono", monospace;
  font-size: min(8.5vw, 16vh);
  font-weight: 700;
  letter-spacing: 0.04em;
  line-height: 1.1;
  margin: 0.1em 0 0.2em;
  white-space: nowrap;
}
.expiry { color: #ddd; }
.expiry.soon { color: #ffd400; }
#countdown { font-variant-numeric: tabular-nums; font-weight: 700; }

.qr { margin: 0; text-align: center; color: #ddd; }
.qr img { display: block; width: min(36vw, 58vh); height: min(36vw, 58vh); background: #fff; image-rendering: pixelated; }
.qr figcaption { margin-top: 0.4em; font-size: 0.8em; }

.message-screen { text-align: center; max-width: 80vw; }
.message-screen h1 { font-size: min(5.5vw, 11vh); }
.detail { color: #ddd; }
.retry { color: #ddd; margin-top: 0.6em; }
body[data-screen="signed-in"] .message-screen h1 { color: #7dff9b; }
body[data-screen="error"] .message-screen h1,
body[data-screen="offline"] .message-screen h1 { color: #ffb0a0; }

footer { padding: 0 4vw 2vh; color: #999; font-size: 0.6em; text-align: right; }

.index { flex-direction: column; align-items: flex-start; }
.index a { color: #7fd4ff; }
`;
