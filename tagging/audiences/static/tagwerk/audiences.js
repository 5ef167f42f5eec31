// Audiences: live count under the expression box; progress of a bulk operation.
(function () {
  "use strict";

  function liveCount(form) {
    const input = form.querySelector("#tw-expr");
    const out = form.querySelector("#tw-count");
    const errorBox = form.querySelector("#tw-expr-error");
    let timer = null, controller = null;
    function show(error) {
      errorBox.hidden = !error;
      errorBox.textContent = error || "";
    }
    function update() {
      const expr = input.value.trim();
      if (controller) controller.abort();
      if (!expr) { out.textContent = ""; show(""); return; }
      controller = new AbortController();
      out.textContent = "…";
      const url = form.dataset.countUrl + "?expr=" + encodeURIComponent(expr);
      fetch(url, {signal: controller.signal, credentials: "same-origin"})
        .then((r) => r.json())
        .then((data) => {
          if (data.error) {
            out.textContent = "";
            show(data.error + (data.position ? " (" + gettextSafe("at") + " " + data.position + ")" : ""));
          } else {
            show("");
            out.textContent = data.count === null ? "" :
              data.count.toLocaleString() + " " + gettextSafe("contacts match");
            out.dataset.count = data.count;
          }
        })
        .catch((e) => { if (e.name !== "AbortError") out.textContent = "?"; });
    }
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 300); });
    if (input.value.trim()) update();
  }

  function gettextSafe(s) { return typeof window.gettext === "function" ? window.gettext(s) : s; }

  function bulkProgress(box) {
    const bar = box.querySelector("#tw-bulk-bar");
    const text = box.querySelector("#tw-bulk-text");
    const result = box.querySelector("#tw-bulk-result");
    function poll() {
      fetch(box.dataset.progressUrl, {credentials: "same-origin"})
        .then((r) => r.json())
        .then((d) => {
          bar.value = d.percent;
          text.textContent = d.status_display + " · " + d.processed + " / " + d.total;
          box.dataset.status = d.status;
          if (d.finished) {
            // Reload once so the result message and the undo button appear.
            window.location.reload();
          } else {
            setTimeout(poll, 700);
          }
        })
        .catch(() => setTimeout(poll, 2000));
    }
    if (box.dataset.status === "pending" || box.dataset.status === "running") poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("tw-audience");
    if (form) liveCount(form);
    const box = document.getElementById("tw-bulk");
    if (box) bulkProgress(box);
  });
})();
