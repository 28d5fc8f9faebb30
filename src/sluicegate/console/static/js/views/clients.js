// Clients and keys: every client with its permissions; create a client; a client's
// keys, create one (shown once, with a copy button) and revoke one. Everything here
// needs the admin permission on "*", as the admin API does.

import { api, apiPage } from "../api.js";
import { errorBox, field, formatNumber, h, replace, status } from "../dom.js";
import { useOpsStyle } from "./ops-style.js";

const PAGE = 100;
const PERMISSIONS = [
  ["produce", "Produce to topics"],
  ["consume", "Consume from topics"],
  ["admin", "Administer topics"],
  ["ce_sources", "CloudEvents sources"],
  ["ce_produce_types", "CloudEvents types to produce"],
  ["ce_consume_types", "CloudEvents types to consume"],
];
const EXPIRIES = [
  ["", "Never"],
  ["86400", "In a day"],
  ["2592000", "In 30 days"],
  ["31536000", "In a year"],
];

function patterns(text) {
  return text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
}

function permissionList(values) {
  return values.length ? h("ul", { class: "perm-list" }, values.map((v) => h("li", {}, h("code", {}, v)))) : h("span", { class: "muted" }, "—");
}

function clientLink(name) {
  return h("a", { href: `#/clients?client=${encodeURIComponent(name)}` }, name);
}

function clientsTable(clients) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Client"),
          h("th", { scope: "col", class: "hide-narrow" }, "Origin"),
          h("th", { scope: "col" }, "Produce"),
          h("th", { scope: "col" }, "Consume"),
          h("th", { scope: "col" }, "Admin"),
          h("th", { scope: "col", class: "hide-narrow" }, "CloudEvents"),
          h("th", { scope: "col", class: "num" }, "Active keys"),
        ),
      ),
      h(
        "tbody",
        {},
        clients.map((c) =>
          h(
            "tr",
            {},
            h("td", {}, clientLink(c.name)),
            h("td", { class: "hide-narrow" }, c.origin),
            h("td", {}, permissionList(c.produce)),
            h("td", {}, permissionList(c.consume)),
            h("td", {}, permissionList(c.admin)),
            h(
              "td",
              { class: "hide-narrow" },
              c.ce_sources.length || c.ce_produce_types.length || c.ce_consume_types.length
                ? `${c.ce_sources.length} source(s), ${c.ce_produce_types.length + c.ce_consume_types.length} type pattern(s)`
                : h("span", { class: "muted" }, "—"),
            ),
            h("td", { class: "num" }, formatNumber(c.active_keys)),
          ),
        ),
      ),
    ),
  );
}

function createClientForm(onCreated, error) {
  const name = h("input", { name: "name", required: true, autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9._@:+\\-]{0,127}" });
  const inputs = Object.fromEntries(PERMISSIONS.map(([key]) => [key, h("input", { name: key, autocomplete: "off" })]));
  const form = h(
    "form",
    { "aria-labelledby": "new-client-title" },
    h("h2", { id: "new-client-title" }, "Create a client"),
    field("Name", name, "1–128 characters of letters, digits and . _ @ : + -"),
    h(
      "div",
      { class: "row" },
      PERMISSIONS.map(([key, label]) => field(label, inputs[key], "Names or glob patterns, separated by commas or spaces")),
    ),
    h("button", { type: "submit" }, "Create client"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    for (const [key] of PERMISSIONS) body[key] = patterns(inputs[key].value);
    try {
      const created = await api("/admin/v1/clients", { method: "POST", json: body });
      status(`Client ${created.name} created`);
      replace(error);
      form.reset();
      onCreated(created);
    } catch (failure) {
      replace(error, String(failure));
    }
  });
  return form;
}

function keysTable(keys, onRevoke) {
  if (!keys.length) return h("p", { class: "muted" }, "This client has no key.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "aria-label": "Keys" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Key id", "Starts with", "Status", "Created", "Expires", ""].map((title, index) =>
            h("th", { scope: "col", class: index === 3 || index === 4 ? "hide-narrow" : null }, title || h("span", { class: "visually-hidden" }, "Actions")),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        keys.map((k) =>
          h(
            "tr",
            { dataset: { key: k.id } },
            h("td", {}, h("code", {}, k.id)),
            h("td", {}, h("code", {}, `${k.prefix}…`)),
            h("td", {}, k.status),
            h("td", { class: "hide-narrow" }, k.created_at),
            h("td", { class: "hide-narrow" }, k.expires_at ?? "never"),
            h(
              "td",
              {},
              k.status === "active"
                ? h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.id}`, onclick: () => onRevoke(k) }, "Revoke")
                : null,
            ),
          ),
        ),
      ),
    ),
  );
}

// The key, shown this once: the API never shows it again.
function newKeyBox(created) {
  const value = h("code", { id: "new-key" }, created.key);
  const copy = h("button", { type: "button", class: "secondary" }, "Copy key");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(created.key);
    } catch {
      // No clipboard permission (a page not served over https, say): select it instead.
      const range = document.createRange();
      range.selectNodeContents(value);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    status("Key copied");
  });
  return h(
    "div",
    { class: "secret", role: "region", "aria-labelledby": "new-key-title" },
    h("h3", { id: "new-key-title" }, "New key — shown only now"),
    h("p", {}, "Copy it now: the gateway never shows it again."),
    h("p", {}, value),
    copy,
  );
}

function confirmRevoke(key) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-labelledby": "revoke-title" },
      h("h2", { id: "revoke-title" }, `Revoke key ${key.id}?`),
      h("p", {}, `Requests with the key starting ${key.prefix}… are refused from now on. This cannot be undone.`),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => dialog.close("revoke") }, "Revoke key"),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "revoke");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

async function clientView(name, box, error) {
  const path = `/admin/v1/clients/${encodeURIComponent(name)}`;
  const client = await api(path);
  const keysBox = h("div");
  const secretBox = h("div", { "aria-live": "polite" });

  async function loadKeys() {
    const keys = [];
    let cursor = null;
    do {
      const { items, next } = await apiPage(`${path}/keys`, { query: { limit: PAGE, cursor } });
      keys.push(...items);
      cursor = next;
    } while (cursor);
    replace(keysBox, keysTable(keys, revoke));
  }

  async function revoke(key) {
    if (!(await confirmRevoke(key))) return;
    try {
      await api(`${path}/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
      status(`Key ${key.id} revoked`);
      replace(error);
      await loadKeys();
    } catch (failure) {
      replace(error, String(failure));
    }
  }

  const expiry = h("select", { name: "expires_in" }, EXPIRIES.map(([value, label]) => h("option", { value }, label)));
  const keyForm = h("form", { class: "row", "aria-label": "Create a key" }, field("Expires", expiry), h("button", { type: "submit" }, "Create key"));
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = expiry.value ? { expires_in: Number(expiry.value) } : {};
      const created = await api(`${path}/keys`, { method: "POST", json: body });
      replace(secretBox, newKeyBox(created));
      replace(error);
      await loadKeys();
    } catch (failure) {
      replace(error, String(failure));
    }
  });

  replace(
    box,
    h("h2", {}, `Client ${client.name}`),
    h("p", {}, h("a", { href: "#/clients" }, "All clients"), ` · from ${client.origin === "config" ? "the config file" : "the admin API"}`),
    h(
      "dl",
      { class: "cards" },
      PERMISSIONS.map(([key, label]) => h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, permissionList(client[key])))),
    ),
    h("h3", {}, "Keys"),
    keyForm,
    secretBox,
    keysBox,
  );
  await loadKeys();
}

export default async function clients(main, params, context) {
  useOpsStyle();
  const chosen = context.query.get("client");
  const error = errorBox();
  const box = h("div");
  main.append(h("section", { "aria-labelledby": "clients-title" }, h("h1", { id: "clients-title" }, "Clients and keys"), error, box));
  try {
    if (chosen) {
      await clientView(chosen, box, error);
      return;
    }
    const listBox = h("div");
    const pager = h("div", { class: "pager" });
    let cursors = [null];
    let page = 0;
    async function loadPage() {
      const { items, next } = await apiPage("/admin/v1/clients", { query: { limit: PAGE, cursor: cursors[page] } });
      replace(listBox, items.length ? clientsTable(items) : h("p", { class: "muted" }, "No client."));
      cursors = cursors.slice(0, page + 1);
      if (next) cursors.push(next);
      const previous = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Previous");
      const following = h("button", { type: "button", class: "secondary", disabled: !next }, "Next");
      previous.addEventListener("click", () => {
        page -= 1;
        loadPage().catch((failure) => replace(error, String(failure)));
      });
      following.addEventListener("click", () => {
        page += 1;
        loadPage().catch((failure) => replace(error, String(failure)));
      });
      replace(pager, page === 0 && !next ? null : [previous, h("span", { class: "muted" }, `Page ${page + 1}`), following]);
    }
    replace(
      box,
      listBox,
      pager,
      createClientForm((created) => {
        location.hash = `#/clients?client=${encodeURIComponent(created.name)}`;
      }, error),
    );
    await loadPage();
  } catch (failure) {
    replace(error, String(failure));
  }
}
