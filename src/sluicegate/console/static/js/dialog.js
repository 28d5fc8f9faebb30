// Modal dialogs on <dialog>: focus stays inside, Escape cancels, and the action's error
// (the API's own) is shown in the dialog rather than closing it.

import { errorBox, h, replace } from "./dom.js";

// Opens a dialog with `body` (nodes) and a submit button `action`; `run()` is called on
// submit and the dialog closes when it resolves. Resolves to run()'s value, or null if
// cancelled.
export function formDialog({ title, body, action, danger = false, run }) {
  return new Promise((resolve) => {
    const error = errorBox();
    const submit = h("button", { type: "submit", class: danger ? "danger" : null }, action);
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", { id: titleId }, title),
      body,
      error,
      h("div", { class: "actions" }, cancel, submit),
    );
    const dialog = h("dialog", { "aria-labelledby": titleId }, form);
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      replace(error);
      try {
        result = (await run()) ?? true;
        dialog.close();
      } catch (failure) {
        replace(error, String(failure));
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    // The first field; with none (a confirmation), Cancel: Enter must not destroy.
    (form.querySelector("input, select, textarea") ?? (danger ? cancel : submit)).focus();
  });
}

// A yes/no confirmation of a destructive action, naming what it destroys.
export function confirmDialog({ title, message, action, run }) {
  return formDialog({ title, body: h("p", {}, message), action, danger: true, run });
}
