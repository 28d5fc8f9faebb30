// Topics: the admin list a page at a time (search by name), and creating a topic.

import { api, apiPage } from "../api.js";
import { formDialog } from "../dialog.js";
import { errorBox, field, formatBytes, formatDuration, h, replace, status } from "../dom.js";
import { go } from "../router.js";
import { retentionFields } from "./topic_form.js";

const PAGE_SIZE = 50;
// Records a second over the last minutes, fetched for the rows shown, a few at a time.
const RATE_MINUTES = 5;
const RATE_FETCHES = 4;

async function fillRates(cells, signal) {
  const queue = [...cells];
  async function worker() {
    while (queue.length && !signal.aborted) {
      const [topic, cell] = queue.shift();
      try {
        const rates = await api(`/admin/v1/topics/${encodeURIComponent(topic)}/rates`, {
          query: { minutes: RATE_MINUTES },
          signal,
        });
        const records = rates.points.reduce((sum, point) => sum + point.records, 0);
        // The points are whole minutes and the current one so far: the API says how
        // long that is (five full minutes would read up to a fifth low).
        const seconds = rates.seconds ?? RATE_MINUTES * rates.step_seconds;
        const rate = records / seconds;
        cell.textContent = !records ? "0" : rate < 0.01 ? "<0.01" : rate < 10 ? rate.toFixed(2) : rate.toFixed(0);
      } catch (failure) {
        // A client that administers a topic without reading it (403) sees no rate.
        if (failure.name !== "AbortError") cell.textContent = "—";
      }
    }
  }
  await Promise.all(Array.from({ length: RATE_FETCHES }, worker));
}

// The search and the page are in the URL ("#/topics?name=orders&cursor=..."), so that Back
// and a bookmark find them; the cursors of the pages before are in the history entry.
function address(name, cursors) {
  const query = new URLSearchParams();
  if (name) query.set("name", name);
  const cursor = cursors[cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  const text = query.toString();
  return text ? `#/topics?${text}` : "#/topics";
}

export default function topics(main, params, context) {
  let name = context.query.get("name") ?? "";
  // Cursors of the pages walked so far: [null (first page), cursor of page 2, ...].
  const cursor = context.query.get("cursor");
  const remembered = history.state?.topicCursors;
  let cursors = !cursor ? [null] : remembered?.at(-1) === cursor ? remembered : [null, cursor];
  let next = null;
  let controller = null;

  const search = h("input", { type: "search", name: "name", value: name, autocomplete: "off" });
  const rows = h("tbody");
  const caption = h("caption", { class: "muted" });
  const error = errorBox();
  const previous = h("button", { type: "button", class: "secondary" }, "Previous page");
  const following = h("button", { type: "button", class: "secondary" }, "Next page");
  const where = h("span", { class: "muted", "aria-live": "polite" });

  async function load() {
    controller?.abort();
    controller = new AbortController();
    const cursor = cursors[cursors.length - 1];
    replace(error);
    try {
      const page = await apiPage("/admin/v1/topics", {
        query: { limit: PAGE_SIZE, name, cursor },
        signal: controller.signal,
      });
      next = page.next;
      const rateCells = page.items.map((topic) => [topic.name, h("td", { class: "num" }, "…")]);
      replace(rows, page.items.map((topic, index) => row(topic, rateCells[index][1])));
      fillRates(rateCells, controller.signal);
      if (!page.items.length) {
        replace(rows, h("tr", {}, h("td", { colspan: 6 }, name ? `No topic name contains “${name}”.` : "No topics yet.")));
      }
      replace(caption, name ? `Topics whose name contains “${name}”` : "Topics you administer");
      previous.disabled = cursors.length === 1;
      following.disabled = !next;
      replace(where, `Page ${cursors.length}`);
    } catch (failure) {
      if (failure.name === "AbortError") return;
      // What was shown is not the answer to what was asked: it goes.
      replace(error, String(failure));
      replace(rows);
      replace(caption);
      replace(where);
      previous.disabled = cursors.length === 1;
      following.disabled = true;
    }
  }

  // A new search or page is a new history entry.
  function show() {
    const target = address(name, cursors);
    if (location.hash !== target) history.pushState({ topicCursors: cursors }, "", target);
    load();
  }

  function row(topic, rateCell) {
    const href = `#/topics/${encodeURIComponent(topic.name)}`;
    return h(
      "tr",
      {},
      h("td", {}, h("a", { href }, topic.name)),
      h("td", { class: "num" }, topic.partitions),
      rateCell,
      h("td", {}, formatDuration(topic.retention_ms)),
      h("td", { class: "hide-narrow" }, formatBytes(topic.retention_bytes)),
      h("td", { class: "hide-narrow" }, new Date(topic.created_at).toLocaleString("en-GB")),
    );
  }

  const form = h(
    "form",
    { class: "toolbar", role: "search" },
    field("Search topics by name", search),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    name = search.value.trim();
    cursors = [null];
    show();
  });
  previous.addEventListener("click", () => {
    cursors = cursors.slice(0, -1);
    show();
  });
  following.addEventListener("click", () => {
    if (!next) return;
    cursors = [...cursors, next];
    show();
  });

  const create = h("button", { type: "button" }, "Create topic");
  create.addEventListener("click", () => createTopic());

  main.append(
    h(
      "section",
      {},
      h("div", { class: "row heading" }, h("h1", {}, "Topics"), create),
      form,
      error,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          caption,
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Name"),
              h("th", { scope: "col", class: "num" }, "Partitions"),
              h("th", { scope: "col", class: "num" }, `Records/s (${RATE_MINUTES} min)`),
              h("th", { scope: "col" }, "Retention"),
              h("th", { scope: "col", class: "hide-narrow" }, "Size limit"),
              h("th", { scope: "col", class: "hide-narrow" }, "Created"),
            ),
          ),
          rows,
        ),
      ),
      h("div", { class: "pager" }, previous, where, following),
    ),
  );
  load();
  return () => controller?.abort();
}

async function createTopic() {
  const nameInput = h("input", { name: "name", required: true, pattern: "[a-zA-Z0-9._\\-]{1,249}", autocomplete: "off" });
  const partitions = h("input", { name: "partitions", type: "number", min: 1, value: 1, required: true });
  const retention = retentionFields({});
  const created = await formDialog({
    title: "Create a topic",
    action: "Create",
    body: [
      field("Name", nameInput, "1–249 characters: letters, digits, . _ -"),
      field("Partitions", partitions),
      ...retention.fields,
    ],
    run: () =>
      api("/admin/v1/topics", {
        method: "POST",
        json: { name: nameInput.value.trim(), partitions: Number(partitions.value), ...retention.values() },
      }),
  });
  if (created) {
    status(`Topic ${created.name} created`);
    go(`/topics/${encodeURIComponent(created.name)}`);
  }
}
