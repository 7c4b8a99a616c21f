// The models page while a refresh runs: the log follows the refresh, and the page reloads when it ends.
(function () {
  "use strict";
  const panel = document.querySelector("[data-refresh-progress]");
  if (!panel || panel.dataset.running !== "true") return;
  const log = panel.querySelector(".refresh-log");
  const every = 2000;

  async function poll() {
    try {
      const response = await fetch(panel.dataset.refreshProgress, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const progress = await response.json();
      log.textContent = progress.log.join("\n");
      log.scrollTop = log.scrollHeight;
      if (!progress.running) {
        window.location.reload();
        return;
      }
    } catch (error) {
      // a missed answer (a restart, a network blip): the next poll tries again
    }
    setTimeout(poll, every);
  }

  setTimeout(poll, every);
})();
