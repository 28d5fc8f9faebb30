// A topic: its figures and partitions, records a second, alter / purge / delete, and
// three tabs: the live tail, browsing from an offset or a time, producing a record.

import { api, ApiError } from "../api.js";
import { rateChart } from "../chart.js";
import { confirmDialog, formDialog } from "../dialog.js";
import { errorBox, field, formatBytes, formatDuration, formatNumber, h, replace, status } from "../dom.js";
import { recordRow, recordsTable } from "../records.js";
import { go } from "../router.js";
import { openTail } from "../tail.js";
import { retentionFields } from "./topic_form.js";

// The live tail keeps at most this many rows in the page, and redraws at most this often:
// a topic taking thousands of records a second costs a bounded page.
const TAIL_ROWS = 500;
const TAIL_RENDER_MS = 200;
const RATE_REFRESH_MS = 30_000;

export default function topicPage(main, { name }) {
  const path = `/admin/v1/topics/${encodeURIComponent(name)}`;
  const cleanups = [];
  const error = errorBox();
  const cards = h("dl", { class: "cards" });
  const partitions = h("tbody");
  const chartBox = h("div");
  const panels = h("div");
  let topic = null;

  async function refresh() {
    try {
      topic = await api(path);
      showTopic();
    } catch (failure) {
      replace(error, String(failure));
    }
  }

  function showTopic() {
    const offsets = topic.partition_offsets ?? [];
    const kept = offsets.reduce((sum, p) => sum + (p.high - p.low), 0);
    replace(
      cards,
      card("Partitions", topic.partitions),
      card("Retention", formatDuration(topic.retention_ms)),
      card("Size limit", formatBytes(topic.retention_bytes)),
      card("Records kept", formatNumber(kept)),
    );
    replace(
      partitions,
      offsets.map((p) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, p.partition),
          h("td", { class: "num" }, formatNumber(p.low)),
          h("td", { class: "num" }, formatNumber(p.high)),
          h("td", { class: "num" }, formatNumber(p.high - p.low)),
        ),
      ),
    );
  }

  const chart = rateChart(chartBox);
  cleanups.push(() => chart.destroy());
  async function loadRates() {
    try {
      const rates = await api(`${path}/rates`, { query: { minutes: 15 } });
      chart.update(rates.points);
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
    }
  }
  const rateTimer = setInterval(loadRates, RATE_REFRESH_MS);
  cleanups.push(() => clearInterval(rateTimer));

  const actions = h(
    "div",
    { class: "row" },
    button("Alter", "secondary", alter),
    button("Purge", "danger", purge),
    button("Delete", "danger", remove),
  );

  async function alter() {
    const partitionsInput = h("input", { type: "number", min: topic.partitions, value: topic.partitions, required: true });
    const retention = retentionFields(topic);
    const changed = await formDialog({
      title: `Alter ${name}`,
      action: "Save",
      body: [field("Partitions", partitionsInput, "Partitions can only be added"), ...retention.fields],
      run: () => api(path, { method: "PATCH", json: { partitions: Number(partitionsInput.value), ...retention.values() } }),
    });
    if (changed) {
      status(`Topic ${name} changed`);
      refresh();
    }
  }

  async function purge() {
    const done = await confirmDialog({
      title: `Purge ${name}?`,
      message: `Every record of ${name} is dropped, in every partition. Offsets go on counting. This cannot be undone.`,
      action: "Purge",
      run: () => api(`${path}/purge`, { method: "POST" }),
    });
    if (done) {
      status(`Topic ${name} purged`);
      refresh();
    }
  }

  async function remove() {
    const done = await confirmDialog({
      title: `Delete ${name}?`,
      message: `${name}, its records and its consumer groups' positions are deleted. This cannot be undone.`,
      action: "Delete",
      run: () => api(path, { method: "DELETE" }),
    });
    if (done) {
      status(`Topic ${name} deleted`);
      go("/topics");
    }
  }

  // -- tabs ---------------------------------------------------------------------------
  const tabs = [
    ["Live tail", () => liveTail(name, cleanups)],
    ["Browse", () => browse(name, () => topic)],
    ["Produce", () => produce(name)],
  ];
  let closeTab = null;
  const tabButtons = tabs.map(([label, open], index) => {
    const tabButton = h("button", { type: "button", role: "tab", id: `tab-${index}`, "aria-controls": "tab-panel", "aria-selected": "false" }, label);
    tabButton.addEventListener("click", () => select(index));
    tabButton.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const target = (index + step + tabs.length) % tabs.length;
      select(target);
      tabButtons[target].focus();
    });
    return tabButton;
  });
  function select(index) {
    closeTab?.();
    tabButtons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === index));
      b.tabIndex = i === index ? 0 : -1;
    });
    const { node, close } = tabs[index][1]();
    panels.setAttribute("aria-labelledby", `tab-${index}`);
    replace(panels, node);
    closeTab = close;
  }
  cleanups.push(() => closeTab?.());
  panels.id = "tab-panel";
  panels.setAttribute("role", "tabpanel");

  main.append(
    h(
      "section",
      {},
      h("p", {}, h("a", { href: "#/topics" }, "← Topics")),
      h("div", { class: "row heading" }, h("h1", {}, name), actions),
      error,
      cards,
      h("h2", {}, "Records a second"),
      chartBox,
      h("h2", {}, "Partitions"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("caption", { class: "visually-hidden" }, "Partitions and their watermarks"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col", class: "num" }, "Partition"),
              h("th", { scope: "col", class: "num" }, "Low watermark"),
              h("th", { scope: "col", class: "num" }, "High watermark"),
              h("th", { scope: "col", class: "num" }, "Records"),
            ),
          ),
          partitions,
        ),
      ),
      h("div", { class: "tabs", role: "tablist", "aria-label": "Records" }, tabButtons),
      panels,
    ),
  );
  refresh().then(loadRates);
  select(0);
  return () => cleanups.forEach((cleanup) => cleanup());
}

function card(label, value) {
  return h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, value));
}

function button(label, kind, onclick) {
  return h("button", { type: "button", class: kind, onclick }, label);
}

// -- live tail -----------------------------------------------------------------------

function liveTail(name) {
  const body = h("tbody", { "aria-live": "off" });
  const counter = h("p", { class: "muted", role: "status" }, "Connecting…");
  const error = errorBox();
  const toggle = h("button", { type: "button", class: "secondary" }, "Pause");
  let buffered = [];
  let received = 0;
  let timer = null;
  let close = null;
  let paused = false;
  // The last offset shown per partition: a reconnection shows nothing twice.
  const last = new Map();
  let lastTime = null;

  function flush() {
    timer = null;
    if (!buffered.length) return;
    const rows = buffered.slice(-TAIL_ROWS).reverse().map(recordRow);
    buffered = [];
    body.prepend(...rows);
    while (body.childElementCount > TAIL_ROWS) body.lastElementChild.remove();
    replace(counter, `${formatNumber(received)} records received; the newest ${formatNumber(body.childElementCount)} shown, newest first.`);
  }

  function onEvent({ event, data }) {
    if (event === "records") {
      const { records } = JSON.parse(data);
      for (const record of records) {
        if (record.offset <= (last.get(record.partition) ?? -1)) continue;
        last.set(record.partition, record.offset);
        lastTime = record.timestamp;
        received += 1;
        buffered.push(record);
      }
      // Only the rows that can be shown are kept between redraws.
      if (buffered.length > TAIL_ROWS) buffered = buffered.slice(-TAIL_ROWS);
      timer ??= setTimeout(flush, TAIL_RENDER_MS);
    } else if (event === "start") {
      replace(error);
      if (!received) replace(counter, "Live: waiting for new records…");
    } else if (event === "error") {
      const failure = JSON.parse(data);
      replace(error, `${failure.status} ${failure.error}: ${failure.message}`);
    }
  }

  function start() {
    close = openTail(name, {
      query: lastTime ? { from: lastTime } : {},
      onEvent,
      onEnd: (failure) => {
        if (failure) replace(error, `The tail stopped: ${failure}. Reconnecting…`);
        // The server ended the stream (a restart, a shutdown): reconnect where it was.
        setTimeout(() => {
          if (!paused && close) start();
        }, 3000);
      },
    });
  }

  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      close?.();
      close = null;
    } else {
      start();
    }
  });
  start();
  return {
    node: h("div", {}, h("div", { class: "toolbar" }, toggle, counter), error, recordsTable(`Live tail of ${name}`, body)),
    close: () => {
      paused = true;
      close?.();
      close = null;
      clearTimeout(timer);
    },
  };
}

// -- browse --------------------------------------------------------------------------

function browse(name, currentTopic) {
  const from = h("input", { name: "from", autocomplete: "off", placeholder: "0 or 2026-01-31T12:00:00Z" });
  const partition = h("select", { name: "partition" }, h("option", { value: "" }, "All"));
  const count = currentTopic()?.partitions ?? 1;
  for (let p = 0; p < count; p += 1) partition.append(h("option", { value: String(p) }, String(p)));
  const limit = h("input", { name: "limit", type: "number", min: 1, max: 500, value: 50 });
  const body = h("tbody");
  const error = errorBox();
  const info = h("p", { class: "muted", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Next page");
  let next = null;

  async function load(append) {
    replace(error);
    const query = { from: append ? next : from.value.trim(), partition: partition.value, limit: limit.value };
    try {
      const page = await api(`/admin/v1/topics/${encodeURIComponent(name)}/browse`, { query });
      const rows = page.records.map(recordRow);
      if (append) body.append(...rows);
      else replace(body, rows);
      const records = page.records;
      if (partition.value !== "") next = String(page.positions[partition.value]);
      // Across partitions, the next page starts at the last record's time.
      else next = records.length ? records[records.length - 1].timestamp : null;
      more.hidden = records.length < Number(limit.value) || next === null;
      replace(info, `${formatNumber(body.childElementCount)} records shown.`);
    } catch (failure) {
      replace(error, String(failure));
    }
  }

  const form = h(
    "form",
    { class: "toolbar" },
    field("From", from, "An offset, or a time (RFC 3339); empty: the oldest kept"),
    field("Partition", partition),
    field("Records", limit),
    h("button", { type: "submit" }, "Show records"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(false);
  });
  more.addEventListener("click", () => load(true));
  return { node: h("div", {}, form, error, info, recordsTable(`Records of ${name}`, body), more), close: null };
}

// -- produce -------------------------------------------------------------------------

function produce(name) {
  const key = h("input", { name: "key", autocomplete: "off" });
  const kind = h("select", { name: "type" }, h("option", { value: "text" }, "Text"), h("option", { value: "json" }, "JSON"));
  const value = h("textarea", { name: "value", rows: 5, required: true });
  const error = errorBox();
  const result = h("p", { role: "status" });
  const form = h(
    "form",
    {},
    field("Key", key, "Optional: records with one key go to one partition"),
    field("Value type", kind),
    field("Value", value),
    h("button", { type: "submit" }, "Produce"),
    error,
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(error);
    replace(result);
    let data = value.value;
    if (kind.value === "json") {
      try {
        data = JSON.parse(value.value);
      } catch (failure) {
        replace(error, `The value is not JSON: ${failure.message}`);
        return;
      }
    }
    const body = { value: { type: kind.value, data } };
    if (key.value) body.key = { type: "text", data: key.value };
    try {
      // Through records v2, as any producer would.
      const stored = await api(`/v2/topics/${encodeURIComponent(name)}/records`, { method: "POST", json: body });
      replace(result, `Stored in partition ${stored.partition_id} at offset ${stored.offset}.`);
    } catch (failure) {
      replace(error, String(failure));
    }
  });
  return { node: form, close: null };
}
