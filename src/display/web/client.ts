/**
 * The page's script, served as /assets/display.js. Plain ES2017 for the old browsers in TVs and kiosks; no
 * imports, no framework. The server sends each snapshot with the screen it makes, already in the page's
 * language (src/display/screen.ts); this script draws it, runs its countdown, and moves on to the screen's
 * `then` when the countdown ends, redrawing every quarter second.
 * Kept in a TypeScript string so `tsc` ships it inside dist/ with no copy step; the browser tests exercise it.
 */
export const CLIENT_JS = String.raw`"use strict";
(function () {
  var body = document.body;
  var deviceId = body.getAttribute("data-device");
  var lang = body.getAttribute("data-lang") || "en";
  var streamUrl = "/devices/" + encodeURIComponent(deviceId) + "/events?lang=" + encodeURIComponent(lang);
  // Digits as the page's language writes them (Arabic-Indic in Arabic), via Intl; plain digits without it.
  function formatter(options) {
    try { return new Intl.NumberFormat(lang, options); } catch (e) { return null; }
  }
  var minutesFormat = formatter({ useGrouping: false });
  var secondsFormat = formatter({ minimumIntegerDigits: 2, useGrouping: false });
  var snapshot = null;
  var clockOffsetMs = 0;
  var connected = false;
  var source = null;
  var lastQr = null;
  var lastCode = null;
  var lastAnnounced = null;
  var newCodeUntil = 0;
  var FRESH_START = { "signed-in": true, "signed-in-neutral": true, "signed-out": true, "idle": true, "offline": true };

  function el(id) { return document.getElementById(id); }

  // Writing only what changed keeps screen readers from announcing the same text again and again.
  function setText(id, text) {
    var node = el(id);
    if (node.textContent !== text) node.textContent = text;
  }

  // The address in pieces that never break inside (a hyphen in a host name is no place to break), with a
  // break opportunity between them; then the longest piece shrinks until it fits the width.
  function setUrl(parts) {
    var node = el("url");
    var key = parts.join("");
    if (node.getAttribute("data-url") !== key) {
      node.setAttribute("data-url", key);
      node.textContent = "";
      for (var i = 0; i < parts.length; i++) {
        var span = document.createElement("span");
        span.textContent = parts[i];
        node.appendChild(span);
        if (i < parts.length - 1) node.appendChild(document.createElement("wbr"));
      }
      // Measured once the section is shown (it may be hidden now); again on every resize.
      setTimeout(function () { fit(node); }, 0);
    }
  }

  // The last resort, for a piece wider than the screen even at 14 px (a very long host name on a phone): let it
  // break where it must, rather than run off the screen. DISPLAY_SHORT_URL is the real fix for such an address.
  function fit(node) {
    node.style.fontSize = "";
    node.className = "url";
    var size = parseFloat(getComputedStyle(node).fontSize);
    for (var i = 0; i < 12 && node.scrollWidth > node.clientWidth + 1 && size > 14; i++) {
      size = Math.max(14, size * 0.9);
      node.style.fontSize = size + "px";
    }
    if (node.scrollWidth > node.clientWidth + 1) node.className = "url too-long";
  }

  function setCode(groups) {
    var node = el("code");
    var key = groups.join(" ");
    if (node.getAttribute("data-code") === key) return;
    node.setAttribute("data-code", key);
    node.textContent = "";
    for (var i = 0; i < groups.length; i++) {
      var span = document.createElement("span");
      span.className = "group";
      span.textContent = groups[i];
      node.appendChild(span);
    }
  }

  function now() { return Date.now() + clockOffsetMs; }

  function remaining(iso) { return Math.max(0, Math.ceil((Date.parse(iso) - now()) / 1000)); }

  function clock(seconds) {
    var m = Math.floor(seconds / 60);
    var sec = seconds % 60;
    return (minutesFormat ? minutesFormat.format(m) : String(m)) + ":" +
      (secondsFormat ? secondsFormat.format(sec) : (sec < 10 ? "0" : "") + sec);
  }

  // Once per screen (and per code), not each time its text is refreshed (the minutes left change).
  function announce(screen) {
    var key = screen.kind + "|" + (screen.code ? screen.code.groups.join("") : screen.headline);
    if (!screen.announce || key === lastAnnounced) return;
    lastAnnounced = key;
    setText("announcer", screen.announce);
  }

  function showMessage(kind, headline, detail, label, until) {
    body.setAttribute("data-screen", kind);
    el("code-screen").hidden = true;
    el("message-screen").hidden = false;
    setText("headline", headline);
    setText("detail", detail || "");
    var counting = label && until && remaining(until) > 0;
    setText("retry-label", counting ? label : "");
    setText("retry", counting ? clock(remaining(until)) : "");
  }

  function showCode(screen, prompt) {
    body.setAttribute("data-screen", "code");
    el("message-screen").hidden = true;
    el("code-screen").hidden = false;
    setText("code-headline", screen.headline);
    setUrl(screen.code.urlParts);
    // A phone or touch panel showing the page opens the address with a tap (only ever an https one).
    var link = el("url");
    if (screen.code.href) { if (link.getAttribute("href") !== screen.code.href) link.setAttribute("href", screen.code.href); }
    else link.removeAttribute("href");
    setText("qr-caption", screen.code.qrCaption);
    setCode(screen.code.groups);
    // A new code replaces one a person may be typing: say so, and make it move (unless motion is unwelcome).
    if (lastCode !== null && lastCode !== prompt.userCode) {
      newCodeUntil = Date.now() + 15000;
      var code = el("code");
      code.className = "code";
      void code.offsetWidth;
      code.className = "code changed";
    }
    lastCode = prompt.userCode;
    el("new-code").hidden = Date.now() > newCodeUntil;
    var left = remaining(screen.until);
    setText("countdown-label", screen.countdownLabel);
    setText("countdown", clock(left));
    el("countdown").parentNode.className = left <= 60 ? "expiry soon" : "expiry";
    if (lastQr !== prompt.qrSvg) {
      lastQr = prompt.qrSvg;
      var img = el("qr");
      // No QR code when the address may not be one (not https, or too long): the address above is the way.
      el("qr-figure").hidden = !prompt.qrSvg;
      el("no-qr").hidden = !!prompt.qrSvg;
      if (prompt.qrSvg) {
        img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(prompt.qrSvg);
        img.alt = "QR: " + prompt.qrUrl;
      } else {
        img.removeAttribute("src");
        img.alt = "";
      }
    }
  }

  function render() {
    body.setAttribute("data-connection", connected ? "open" : "reconnecting");
    var screen = snapshot && snapshot.screen;
    // The countdown ran out: what comes next, without waiting for the server.
    for (var i = 0; i < 4 && screen && screen.until && screen.then && remaining(screen.until) <= 0; i++) screen = screen.then;
    var bannerText = !connected && snapshot ? body.getAttribute("data-text-reconnecting") : screen ? screen.banner : "";
    el("banner").hidden = !bannerText;
    setText("banner", bannerText || "");

    if (!screen) {
      return showMessage("connecting", body.getAttribute("data-text-connecting"), "");
    }
    announce(screen);
    if (screen.kind === "code" && snapshot.prompt) return showCode(screen, snapshot.prompt);
    // Nobody is typing a code on these screens: the next code is a first one, not a "New code".
    if (FRESH_START[screen.kind]) { lastCode = null; newCodeUntil = 0; }
    showMessage(screen.kind, screen.headline, screen.detail, screen.countdownLabel, screen.until);
  }

  function connect() {
    source = new EventSource(streamUrl);
    source.addEventListener("snapshot", function (event) {
      connected = true;
      snapshot = JSON.parse(event.data);
      clockOffsetMs = Date.parse(snapshot.serverTime) - Date.now();
      render();
    });
    source.onopen = function () { connected = true; render(); };
    source.onerror = function () {
      connected = false;
      render();
      // The browser retries a dropped stream by itself, but gives up for good after an HTTP error
      // (a proxy's 502 while the server restarts): then start a new stream.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, 3000);
      }
    };
  }

  window.addEventListener("resize", function () { if (!el("code-screen").hidden) fit(el("url")); });
  connect();
  render();
  setInterval(render, 250);
})();
`;
