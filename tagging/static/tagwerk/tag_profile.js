// The contact's tag panel: search-as-you-type, add with a click, remove with a click.
(function () {
  "use strict";
  const box = document.getElementById("tw-tag-profile");
  if (!box) return;
  const message = box.parentElement.querySelector(".tw-tag-message");
  const csrf = () => (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
  let timer = null;
  let seq = 0;
  let showingHint = false;

  function say(text, isError) {
    message.textContent = text || "";
    message.classList.toggle("tw-error", !!isError);
    showingHint = false;
  }

  function suggestion(tag) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.twAdd = tag.id;
    button.innerHTML = '<span class="tw-chip"></span> <small></small>';
    button.firstChild.style.setProperty("--tw-colour", tag.colour);
    button.firstChild.textContent = (tag.symbol ? tag.symbol + " " : "") + tag.name;
    button.lastChild.textContent = tag.dimension;
    li.appendChild(button);
    return li;
  }

  async function search(query) {
    const list = box.querySelector(".tw-suggestions");
    if (!list) return;
    const mine = ++seq;
    const response = await fetch(box.dataset.searchUrl + "?q=" + encodeURIComponent(query),
                                 {headers: {Accept: "application/json"}});
    if (mine !== seq) return; // a newer keystroke has already asked
    const data = await response.json();
    list.replaceChildren(...(data.results || []).map(suggestion));
    // A tag outside the user's dimensions: say so, and whom to ask. Only a
    // hint is replaced here: the focus after an add must not wipe "added."
    if (data.hint) { say(data.hint, false); showingHint = true; }
    else if (showingHint) say("", false);
  }

  async function change(op, tagId) {
    const response = await fetch(box.dataset.changeUrl, {
      method: "POST",
      headers: {"X-CSRFToken": csrf(), Accept: "application/json"},
      body: new URLSearchParams({op: op, tag: tagId}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
    if (data.html !== undefined) box.innerHTML = data.html;
    say(data.error || data.message, !!data.error);
    if (op === "add") { const input = box.querySelector(".tw-tag-search"); if (input) input.focus(); }
  }

  box.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-tw-remove]");
    const add = event.target.closest("[data-tw-add]");
    if (remove) { event.preventDefault(); change("remove", remove.dataset.twRemove); }
    if (add) { event.preventDefault(); change("add", add.dataset.twAdd); }
  });
  box.addEventListener("input", (event) => {
    if (!event.target.matches(".tw-tag-search")) return;
    clearTimeout(timer);
    timer = setTimeout(() => search(event.target.value), 150);
  });
  box.addEventListener("focusin", (event) => {
    if (event.target.matches(".tw-tag-search") && !event.target.value) search("");
  });
  box.addEventListener("keydown", (event) => {
    if (!event.target.matches(".tw-tag-search")) return;
    if (event.key === "Enter") {
      // Enter picks the first suggestion instead of submitting the contact form.
      event.preventDefault();
      const first = box.querySelector("[data-tw-add]");
      if (first) change("add", first.dataset.twAdd);
    } else if (event.key === "Escape") {
      const list = box.querySelector(".tw-suggestions");
      if (list) list.replaceChildren();
    }
  });
})();
