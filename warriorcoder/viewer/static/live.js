// Live refresh of the viewer's pages while a round runs: polls the page's data-live URL (a
// token that changes when the round's data does) and reloads the page when it changed.
// Served from the package; the Content-Security-Policy allows no other script.
"use strict";
(function () {
  const body = document.body;
  const url = body.dataset.live;
  document.documentElement.dataset.liveScript = url ? "polling" : "idle";
  if (!url) return;
  const every = Math.max(0.2, Number(body.dataset.livePoll) || 5) * 1000;
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  const pausedKey = "warriorcoder-viewer-paused";
  let paused = window.sessionStorage.getItem(pausedKey) === "1";
  let token = null;

  function show(text) {
    if (status) status.textContent = text;
  }

  async function check() {
    if (paused) return;
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) {
        show("live: the viewer answered " + response.status);
        return;
      }
      const data = await response.json();
      if (token !== null && data.token !== token) {
        show("live: new data, reloading");
        window.location.reload();
        return;
      }
      token = data.token;
      show("live: up to date " + new Date().toLocaleTimeString());
    } catch (error) {
      show("live: viewer unreachable");
    }
  }

  if (toggle) {
    toggle.textContent = paused ? "resume" : "pause";
    toggle.addEventListener("click", function () {
      paused = !paused;
      window.sessionStorage.setItem(pausedKey, paused ? "1" : "0");
      toggle.textContent = paused ? "resume" : "pause";
      show(paused ? "live: paused" : "live: resumed");
      if (!paused) check();
    });
  }
  if (paused) show("live: paused");
  check();
  window.setInterval(check, every);
})();
