// Manage tags: find a tag by typing; a single-choice dimension's "+" can be undone by a click.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const picker = document.getElementById("tw-picker");
    if (!picker) return;
    const search = document.getElementById("tw-picker-search");
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      picker.querySelectorAll(".tw-picker-group").forEach((group) => {
        let shown = 0;
        group.querySelectorAll(".tw-pick").forEach((pick) => {
          const hit = !q || pick.dataset.name.includes(q) ||
            group.dataset.dimension.toLowerCase().includes(q);
          pick.hidden = !hit;
          if (hit) shown += 1;
        });
        group.hidden = shown === 0;
      });
    });
    // A radio cannot be unchecked by clicking it again; let it, like a chip toggle.
    picker.querySelectorAll("input[type=radio]").forEach((radio) => {
      radio.addEventListener("mousedown", () => { radio.dataset.was = radio.checked ? "1" : ""; });
      radio.addEventListener("click", () => { if (radio.dataset.was) radio.checked = false; });
    });
    // Adding and removing the same tag is refused: ticking one unticks the other.
    picker.addEventListener("change", (event) => {
      const input = event.target;
      if (!input.checked) return;
      const other = input.name === "add" ? "remove" : "add";
      const twin = picker.querySelector(`input[name=${other}][value="${input.value}"]`);
      if (twin) twin.checked = false;
    });
  });
})();
