// Audiences: live count under the expression box; progress of a bulk operation.
(function () {
  "use strict";
  // Django's JavaScript catalog (jsi18n) defines these; the fallbacks keep English.
  const gettext = window.gettext || ((s) => s);
  const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));
  const interpolate = window.interpolate ||
    ((fmt, obj) => fmt.replace(/%\((\w+)\)s/g, (m, k) => String(obj[k])));

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
            show(data.position ? interpolate(gettext("%(error)s (at character %(position)s)"),
                                             data, true) : data.error);
          } else {
            show("");
            out.textContent = data.count === null ? "" : interpolate(ngettext(
              "%(n)s contact matches", "%(n)s contacts match", data.count),
              {n: data.count.toLocaleString(document.documentElement.lang || undefined)}, true);
            out.dataset.count = data.count;
          }
        })
        .catch((e) => { if (e.name !== "AbortError") out.textContent = "?"; });
    }
    const save = form.querySelector("#tw-save-segment");
    function followSave() {
      if (!save) return;
      const expr = input.value.trim();
      save.href = save.dataset.base + (expr ? "?expression=" + encodeURIComponent(expr) : "");
    }
    input.addEventListener("input", () => {
      clearTimeout(timer); timer = setTimeout(update, 300); followSave();
    });
    // Click a tag, a dimension or an operator to put it where the cursor is.
    form.addEventListener("click", (event) => {
      const button = event.target.closest("[data-insert]");
      if (!button) return;
      event.preventDefault();
      const text = button.dataset.insert;
      const start = input.selectionStart ?? input.value.length;
      const end = input.selectionEnd ?? input.value.length;
      const before = input.value.slice(0, start);
      const glue = before && !/[\s(]$/.test(before) && !/^\s/.test(text) && text !== ")" ? " " : "";
      input.value = before + glue + text + input.value.slice(end);
      const caret = (before + glue + text).length;
      input.focus();
      input.setSelectionRange(caret, caret);
      input.dispatchEvent(new Event("input"));
    });
    if (input.value.trim()) update();
  }



  function bulkProgress(box) {
    const bar = box.querySelector("#tw-bulk-bar");
    const text = box.querySelector("#tw-bulk-text");
    const result = box.querySelector("#tw-bulk-result");
    function poll() {
      fetch(box.dataset.progressUrl, {credentials: "same-origin"})
        .then((r) => r.json())
        .then((d) => {
          bar.value = d.percent;
          text.textContent = interpolate(gettext("%(status)s · %(processed)s of %(total)s"),
                                         {status: d.status_display, processed: d.processed,
                                          total: d.total}, true);
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
