// Keyboard work on the queue: j/k move, a approve, 1-4 reason, r reject, x tick, o open, ? help.
// Decisions are posted in the background; the page stays put and moves to the next comment.
(function () {
  "use strict";
  const items = Array.from(document.querySelectorAll("[data-queue] .item"));
  const help = document.getElementById("help");
  const list = document.querySelector("[data-queue]");
  let current = -1;

  function select(index) {
    if (!items.length) return;
    index = Math.max(0, Math.min(items.length - 1, index));
    if (items[current]) items[current].classList.remove("selected");
    current = index;
    items[current].classList.add("selected");
    items[current].focus({ preventScroll: true });
    items[current].scrollIntoView({ block: "nearest" });
  }

  function nextOpen(from) {
    for (let i = from + 1; i < items.length; i++) if (!items[i].classList.contains("decided")) return i;
    return from;
  }

  async function submit(form, action) {
    const item = form.closest(".item");
    const outcome = form.querySelector(".outcome");
    const data = new FormData(form);
    data.set("action", action);
    if (action === "reject" && !data.get("reason")) {
      item.classList.add("refused");
      outcome.textContent = list.dataset.needReason;
      return;
    }
    let reply;
    try {
      const response = await fetch(form.getAttribute("action"), { method: "POST", body: data, headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!(response.headers.get("Content-Type") || "").includes("json")) throw new Error(response.status);
      reply = await response.json();
    } catch (error) {
      item.classList.add("refused");
      outcome.textContent = list.dataset.networkError;
      return;
    }
    outcome.textContent = reply.message;
    item.classList.toggle("decided", reply.ok);
    item.classList.toggle("refused", !reply.ok);
    if (reply.ok) {
      const box = item.querySelector("input[type=checkbox]");
      if (box) { box.checked = false; box.disabled = true; }
      if (items.indexOf(item) === current) select(nextOpen(current));
    } else {
      item.classList.add("decided");
    }
  }

  items.forEach(function (item, index) {
    const form = item.querySelector("form.decide");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      select(index);
      submit(form, event.submitter ? event.submitter.value : "approve");
    });
    item.addEventListener("click", function (event) {
      if (!event.target.closest("a, button, input, label")) select(index);
    });
  });

  document.querySelectorAll("[data-help]").forEach(function (button) {
    button.addEventListener("click", function () { help.showModal(); });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input:not([type=checkbox]):not([type=radio]), select, textarea")) return;
    if (event.key === "?") { event.preventDefault(); help.open ? help.close() : help.showModal(); return; }
    if (help.open || !items.length) return;
    const item = items[current];
    const form = item && item.querySelector("form.decide");
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "a": if (form) submit(form, "approve"); break;
      case "r": if (form) submit(form, "reject"); break;
      case "1": case "2": case "3": case "4": {
        const radio = form && form.querySelectorAll("input[name=reason]")[Number(event.key) - 1];
        if (radio) radio.checked = true;
        break;
      }
      case "x": { const box = item && item.querySelector("input[type=checkbox]"); if (box && !box.disabled) box.checked = !box.checked; break; }
      case "o": { const link = item && item.querySelector(".facts a"); if (link) window.location = link.href; break; }
      default: return;
    }
    event.preventDefault();
  });

  if (items.length) select(0);
})();
