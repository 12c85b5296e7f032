/**
 * The web display's HTML. Pages are static shells: the script fills them from the event stream, so the same
 * page is right whether it was opened before, during or after a sign-in.
 */

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

function shell(title: string, body: string, bodyAttributes = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/assets/display.css">
</head>
<body${bodyAttributes}>
${body}
</body>
</html>
`;
}

/** One device's sign-in screen. Every text that changes lives in an element the script addresses by id. */
export function devicePage(deviceId: string): string {
  const id = escapeHtml(deviceId);
  return shell(
    `Sign in · ${deviceId}`,
    `<div id="banner" class="banner" role="status" hidden></div>
<main>
  <section id="code-screen" class="code-screen" hidden>
    <div class="steps">
      <h1>Sign in to this device</h1>
      <p class="step">On your phone, open</p>
      <p id="url" class="url"></p>
      <p class="step">and enter the code</p>
      <p id="code" class="code" aria-live="assertive" aria-atomic="true"></p>
      <p class="expiry" aria-live="off"><span id="countdown-label">Code expires in</span> <span id="countdown"></span></p>
    </div>
    <figure id="qr-figure" class="qr">
      <img id="qr" alt="">
      <figcaption>or scan to open the page</figcaption>
    </figure>
  </section>
  <section id="message-screen" class="message-screen" aria-live="polite" aria-atomic="true">
    <h1 id="headline">Connecting…</h1>
    <p id="detail" class="detail"></p>
    <p id="retry" class="retry" aria-live="off"></p>
  </section>
</main>
<footer><span id="device">${id}</span></footer>
<script src="/assets/display.js" defer></script>`,
    ` data-device="${id}" data-screen="connecting" data-connection="connecting"`,
  );
}

/** Several devices: a list to pick from (a kiosk is pointed at one device's page). */
export function indexPage(deviceIds: readonly string[]): string {
  const items = deviceIds
    .map((id) => `<li><a href="/devices/${encodeURIComponent(id)}">${escapeHtml(id)}</a></li>`)
    .join("\n");
  return shell("edge-signin displays", `<main class="index"><h1>Devices</h1><ul>${items}</ul></main>`);
}

export function notFoundPage(deviceIds: readonly string[]): string {
  const items = deviceIds
    .map((id) => `<li><a href="/devices/${encodeURIComponent(id)}">${escapeHtml(id)}</a></li>`)
    .join("\n");
  return shell(
    "Not found",
    `<main class="index"><h1>No such device here</h1><p>This display server shows:</p><ul>${items}</ul></main>`,
  );
}
