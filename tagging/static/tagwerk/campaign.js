// The campaign page: the audience panel follows the expression as it is typed; buttons ask first.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-confirm]").forEach((button) => {
      button.addEventListener("click", (event) => {
        const text = button.dataset.confirm;
        if (text && !window.confirm(text)) event.preventDefault();
      });
    });
    const panel = document.getElementById("tw-prelaunch");
    if (!panel) return;
    const fields = ["id_audience", "id_suppression"].map((id) => document.getElementById(id))
      .filter(Boolean);
    let timer = null, controller = null;
    function refresh() {
      if (controller) controller.abort();
      controller = new AbortController();
      const params = new URLSearchParams();
      fields.forEach((f) => params.set(f.name, f.value));
      panel.classList.add("tw-loading");
      fetch(panel.dataset.estimateUrl + "?" + params, {signal: controller.signal,
                                                         credentials: "same-origin"})
        .then((r) => r.text())
        .then((html) => { panel.innerHTML = html; panel.classList.remove("tw-loading"); })
        .catch(() => panel.classList.remove("tw-loading"));
    }
    fields.forEach((f) => f.addEventListener("input", () => {
      clearTimeout(timer); timer = setTimeout(refresh, 600);
    }));
  });
})();
