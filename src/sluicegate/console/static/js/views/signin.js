// Sign-in: an API key, tried against the API before it is kept; a key that fails
// shows the API's own error.

import { api } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";

export function signIn(context, onSignedIn) {
  const input = h("input", {
    type: "password",
    name: "api-key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const error = errorBox(context.signInMessage);
  context.signInMessage = "";
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Use an API key of a client of this gateway. It is kept in this tab only, until you sign out or close it."),
    field("API key", input),
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    replace(error);
    try {
      // Any valid client may list topics (it sees those it administers).
      await api("/admin/v1/topics", { query: { limit: 1 }, key });
      await onSignedIn(key);
    } catch (failure) {
      replace(error, String(failure));
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
