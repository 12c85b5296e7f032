/**
 * The page's script, served as /assets/display.js. Plain ES2017 for the old browsers in TVs and kiosks; no
 * imports, no framework. It keeps the last snapshot from the event stream and redraws from it, and a timer
 * redraws every quarter second for the countdowns (and for a code that expires while nothing arrives).
 * Kept in a TypeScript string so `tsc` ships it inside dist/ with no copy step; the browser tests exercise it.
 */
export const CLIENT_JS = String.raw`"use strict";
(function () {
  var deviceId = document.body.getAttribute("data-device");
  var streamUrl = "/devices/" + encodeURIComponent(deviceId) + "/events";
  var snapshot = null;
  var clockOffsetMs = 0;
  var connected = false;
  var source = null;
  var lastQr = null;

  function el(id) { return document.getElementById(id); }

  // Writing only what changed keeps screen readers from announcing the same code again and again.
  function setText(id, text) {
    var node = el(id);
    if (node.textContent !== text) node.textContent = text;
  }

  // A long URL wraps after a slash, not in the middle of a word: a break opportunity after each one.
  function setUrl(url) {
    var node = el("url");
    if (node.getAttribute("data-url") === url) return;
    node.setAttribute("data-url", url);
    node.textContent = "";
    var parts = url.split("/");
    for (var i = 0; i < parts.length; i++) {
      node.appendChild(document.createTextNode(parts[i] + (i < parts.length - 1 ? "/" : "")));
      if (i >= 2 && i < parts.length - 1) node.appendChild(document.createElement("wbr"));
    }
  }

  function now() { return Date.now() + clockOffsetMs; }

  function remaining(iso) { return Math.max(0, Math.ceil((Date.parse(iso) - now()) / 1000)); }

  function clock(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function showMessage(screen, headline, detail, retryAt) {
    document.body.setAttribute("data-screen", screen);
    el("code-screen").hidden = true;
    el("message-screen").hidden = false;
    setText("headline", headline);
    setText("detail", detail || "");
    setText("retry", retryAt && remaining(retryAt) > 0 ? "Trying again in " + clock(remaining(retryAt)) : "");
  }

  function showCode(prompt) {
    document.body.setAttribute("data-screen", "code");
    el("message-screen").hidden = true;
    el("code-screen").hidden = false;
    setUrl(prompt.verificationUri);
    setText("code", prompt.userCode);
    var left = remaining(prompt.expiresAt);
    setText("countdown", clock(left));
    el("countdown").parentNode.className = left <= 60 ? "expiry soon" : "expiry";
    if (lastQr !== prompt.qrSvg) {
      lastQr = prompt.qrSvg;
      var img = el("qr");
      // No QR code when the address may not be one (not https, or too long): the address above is the way.
      el("qr-figure").hidden = !prompt.qrSvg;
      if (prompt.qrSvg) {
        img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(prompt.qrSvg);
        img.alt = "QR code that opens " + prompt.qrUrl;
      } else {
        img.removeAttribute("src");
        img.alt = "";
      }
    }
  }

  function render() {
    document.body.setAttribute("data-connection", connected ? "open" : "reconnecting");
    var banner = el("banner");
    var bannerText = !connected && snapshot
      ? "Reconnecting…"
      : snapshot && !snapshot.brokerConnected
        ? "Reconnecting to the message broker…"
        : "";
    banner.hidden = bannerText === "";
    setText("banner", bannerText);

    if (!snapshot) return showMessage("connecting", connected ? "Preparing a sign-in code…" : "Connecting…", "");
    var state = snapshot.state;
    var prompt = snapshot.prompt;
    if (snapshot.availability === "offline") {
      return showMessage("offline", "This device is offline", "A sign-in code will appear here when it is back.");
    }
    if (prompt && remaining(prompt.expiresAt) > 0) return showCode(prompt);
    if (state && state.state === "signed_in") {
      // The server sends the name only for a short while after the sign-in (and the username only when
      // configured); then this is a neutral screen that says nothing about who.
      var account = state.account;
      if (!account) return showMessage("signed-in-neutral", "Signed in", "");
      var name = account.name || account.username || "someone";
      return showMessage("signed-in", "Signed in as " + name, account.username && account.username !== name ? account.username : "");
    }
    if (state && state.state === "error") {
      return showMessage("error", "Sign-in is unavailable right now", state.message || "", state.retryAt);
    }
    if (prompt) return showMessage("waiting", "Preparing a new sign-in code…", "The last code expired.");
    return showMessage("waiting", "Preparing a sign-in code…", "");
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

  connect();
  render();
  setInterval(render, 250);
})();
`;
