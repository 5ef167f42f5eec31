// Small helpers for every admin page: "Older entries" of the timeline load in place.
(function () {
  "use strict";
  document.addEventListener("click", (event) => {
    const more = event.target.closest("[data-tw-more]");
    if (!more) return;
    event.preventDefault();
    const holder = more.closest(".tw-timeline-more");
    fetch(more.href, {credentials: "same-origin"}).then((r) => r.text()).then((html) => {
      const box = document.createElement("div");
      box.innerHTML = html;
      const list = holder.previousElementSibling;
      box.querySelectorAll(".tw-timeline > li").forEach((li) => list.appendChild(li));
      const next = box.querySelector(".tw-timeline-more");
      if (next) holder.replaceWith(next); else holder.remove();
    });
  });
})();
