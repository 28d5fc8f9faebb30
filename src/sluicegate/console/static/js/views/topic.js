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
// The watermarks and "Records kept" are read again this often while the page is seen.
const TOPIC_REFRESH_MS = 8_000;
// A tail that failed for a passing reason (network, 5xx, 429) retries after 3 s, then
// twice as long each time, at most this long.
const TAIL_RETRY_MS = 3_000;
const TAIL_RETRY_MAX_MS = 60_000;

// "0:41,1:17": positions (partition → next offset) as the watch endpoints take them.
function positionsParam(positions) {
  return Object.entries(positions)
    .map(([partition, offset]) => `${partition}:${offset}`)
    .join(",");
}

export default function topicPage(main, { name }) {
  const path = `/admin/v1/topics/${encodeURIComponent(name)}`;
  const cleanups = [];
  const error = errorBox();
  const cards = h("dl", { class: "cards" });
  const partitions = h("tbody");
  const chartBox = h("div");
  const panels = h("div");
  let topic = null;
  // The partition count as last learnt: from the topic, or (for a client that may read
  // the topic but not describe it) from the tail's positions. Browse follows it.
  const partitionCount = { value: 0, listeners: new Set() };
  function learnPartitions(count) {
    if (count === partitionCount.value) return;
    partitionCount.value = count;
    for (const listener of partitionCount.listeners) listener(count);
  }
  // Polling stops once the topic is refused or gone: asking again changes nothing.
  let polling = true;

  async function refresh() {
    try {
      topic = await api(path);
      replace(error);
      showTopic();
      learnPartitions(topic.partitions);
      for (const action of actionButtons) action.disabled = false;
    } catch (failure) {
      if (failure instanceof ApiError && (failure.status === 403 || failure.status === 404)) polling = false;
      replace(error, String(failure));
    }
  }
  const topicTimer = setInterval(() => {
    if (polling && document.visibilityState === "visible") refresh();
  }, TOPIC_REFRESH_MS);
  cleanups.push(() => clearInterval(topicTimer));

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

  // Usable once the topic is known: altering starts from its current figures.
  const actionButtons = [
    button("Alter", "secondary", alter),
    button("Purge", "danger", purge),
    button("Delete", "danger", remove),
  ];
  for (const action of actionButtons) action.disabled = true;
  const actions = h("div", { class: "row" }, actionButtons);

  async function alter() {
    const partitionsInput = h("input", { type: "number", min: topic.partitions, value: topic.partitions, required: true });
    const retention = retentionFields(topic);
    // Only what was changed is sent: a figure shown in hours or MiB and sent back would
    // come back rounded.
    function changes() {
      const patch = retention.changed();
      if (Number(partitionsInput.value) !== topic.partitions) patch.partitions = Number(partitionsInput.value);
      return patch;
    }
    const changed = await formDialog({
      title: `Alter ${name}`,
      action: "Save",
      body: [field("Partitions", partitionsInput, "Partitions can only be added"), ...retention.fields],
      run: () => {
        const patch = changes();
        return Object.keys(patch).length ? api(path, { method: "PATCH", json: patch }) : "unchanged";
      },
    });
    if (changed === "unchanged") {
      status(`Nothing to change in ${name}`);
    } else if (changed) {
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
    // The tail's positions only ever add partitions (the topic's figures are the truth).
    ["Live tail", () => liveTail(name, (count) => count > partitionCount.value && learnPartitions(count))],
    ["Browse", () => browse(name, partitionCount)],
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

// The tail goes on where it was after a reconnection: each partition at the position the
// server's last event gave (not from a time: a partition that was behind would lose
// records). A topic deleted and made again (a new topic_id) starts over from its oldest
// record. A refusal (403, 404) stops the tail and says so; 401 signs out, as any
// request does; a network failure, a 5xx or a 429 is retried, less and less often.
function liveTail(name, learnPartitions) {
  const body = h("tbody", { "aria-live": "off" });
  const counter = h("p", { class: "muted", role: "status" }, "Connecting…");
  const error = errorBox();
  const toggle = h("button", { type: "button", class: "secondary" }, "Pause");
  let buffered = [];
  let received = 0;
  let timer = null;
  let retryTimer = null;
  let retries = 0;
  let close = null;
  let paused = false;
  // The last offset shown per partition: a reconnection shows nothing twice.
  const last = new Map();
  // Where the server will read next, per partition, and which topic it reads.
  let positions = null;
  let topicId = null;
  // The error event the stream ended with, if any.
  let ended = null;

  function flush() {
    timer = null;
    if (!buffered.length) return;
    const rows = buffered.slice(-TAIL_ROWS).reverse().map(recordRow);
    buffered = [];
    body.prepend(...rows);
    while (body.childElementCount > TAIL_ROWS) body.lastElementChild.remove();
    replace(counter, `${formatNumber(received)} records received; the newest ${formatNumber(body.childElementCount)} shown, newest first.`);
  }

  function follow(next) {
    positions = next;
    const partitions = Object.keys(next).map(Number);
    if (partitions.length) learnPartitions(Math.max(...partitions) + 1);
  }

  function onEvent({ event, data }) {
    if (event === "records") {
      const page = JSON.parse(data);
      for (const record of page.records) {
        if (record.offset <= (last.get(record.partition) ?? -1)) continue;
        last.set(record.partition, record.offset);
        received += 1;
        buffered.push(record);
      }
      if (page.positions) follow(page.positions);
      // Only the rows that can be shown are kept between redraws.
      if (buffered.length > TAIL_ROWS) buffered = buffered.slice(-TAIL_ROWS);
      timer ??= setTimeout(flush, TAIL_RENDER_MS);
    } else if (event === "start") {
      const head = JSON.parse(data);
      retries = 0;
      replace(error);
      if (topicId !== null && head.topic_id !== topicId) {
        // Made again since: the positions were the old topic's. Start over.
        topicId = head.topic_id;
        last.clear();
        positions = null;
        status(`Topic ${name} was made again: the tail starts over from its oldest record`);
        close?.();
        start({ from: "0" });
        return;
      }
      topicId = head.topic_id ?? null;
      follow(head.positions ?? {});
      if (!received) replace(counter, "Live: waiting for new records…");
    } else if (event === "error") {
      ended = JSON.parse(data);
      replace(error, `${ended.status} ${ended.error}: ${ended.message}`);
    }
  }

  function stop(message) {
    paused = true;
    close = null;
    toggle.textContent = "Resume";
    replace(error, message);
    replace(counter, `${formatNumber(received)} records received; the tail is stopped.`);
  }

  function onEnd(failure) {
    const refused = failure instanceof ApiError ? failure : ended && new ApiError(ended.status, ended.error, ended.message);
    ended = null;
    const code = refused?.status ?? 0;
    if (code === 401) {
      // The key stopped working: the shell signs out and says why (a refused request
      // did already; an error event in the stream does it here).
      if (!(failure instanceof ApiError)) window.dispatchEvent(new CustomEvent("sluicegate:unauthenticated", { detail: refused }));
      stop(`The tail stopped: ${refused}`);
      return;
    }
    if (refused && code !== 429 && code < 500) {
      // Refused or gone (403, 404, 400…): asking again would be refused again.
      stop(`The tail stopped: ${refused}`);
      return;
    }
    const delay = Math.min(TAIL_RETRY_MAX_MS, TAIL_RETRY_MS * 2 ** retries);
    retries += 1;
    const why = refused ?? failure;
    if (why) replace(error, `The tail stopped: ${why}. Reconnecting in ${Math.round(delay / 1000)} s…`);
    // The server ended the stream (a restart, a shutdown): reconnect where it was.
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!paused && close) start();
    }, delay);
  }

  function start(query) {
    ended = null;
    close = openTail(name, {
      query: query ?? (positions ? { positions: positionsParam(positions) } : {}),
      onEvent,
      onEnd,
    });
  }

  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    clearTimeout(retryTimer);
    retryTimer = null;
    if (paused) {
      close?.();
      close = null;
    } else {
      retries = 0;
      replace(error);
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
      clearTimeout(retryTimer);
    },
  };
}

// -- browse --------------------------------------------------------------------------

// The next page goes on from the positions (partition → next offset) the page before
// ended at: records that share a timestamp are each shown once, and the pages end.
function browse(name, partitionCount) {
  const from = h("input", { name: "from", autocomplete: "off", placeholder: "0 or 2026-01-31T12:00:00Z" });
  const partition = h("select", { name: "partition" }, h("option", { value: "" }, "All"));
  function showPartitions(count) {
    const chosen = partition.value;
    replace(partition, h("option", { value: "" }, "All"));
    for (let p = 0; p < Math.max(count, 1); p += 1) partition.append(h("option", { value: String(p) }, String(p)));
    partition.value = Number(chosen) < Math.max(count, 1) ? chosen : "";
  }
  showPartitions(partitionCount.value);
  partitionCount.listeners.add(showPartitions);
  const limit = h("input", { name: "limit", type: "number", min: 1, max: 500, value: 50 });
  const body = h("tbody");
  const error = errorBox();
  const info = h("p", { class: "muted", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Next page");
  let next = null;
  let shown = null;

  async function load(append) {
    replace(error);
    const query = append
      ? { positions: positionsParam(next), partition: shown.partition, limit: shown.limit }
      : { from: from.value.trim(), partition: partition.value, limit: limit.value };
    try {
      const page = await api(`/admin/v1/topics/${encodeURIComponent(name)}/browse`, { query });
      const rows = page.records.map(recordRow);
      if (append) body.append(...rows);
      else replace(body, rows);
      if (!append) shown = { partition: query.partition, limit: query.limit };
      next = page.positions;
      more.hidden = page.records.length < Number(shown.limit);
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
  return {
    node: h("div", {}, form, error, info, recordsTable(`Records of ${name}`, body), more),
    close: () => partitionCount.listeners.delete(showPartitions),
  };
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
    let data = JSON.stringify(value.value);
    if (kind.value === "json") {
      // Checked here, but sent as typed: records v2 stores JSON as it comes, and a parse
      // and a stringify would round 9007199254740993, drop 1.10's zero and a member.
      try {
        JSON.parse(value.value);
      } catch (failure) {
        replace(error, `The value is not JSON: ${failure.message}`);
        return;
      }
      data = value.value;
    }
    const keyPart = key.value ? `,"key":${JSON.stringify({ type: "text", data: key.value })}` : "";
    const body = `{"value":{"type":${JSON.stringify(kind.value)},"data":${data}}${keyPart}}`;
    try {
      // Through records v2, as any producer would.
      const stored = await api(`/v2/topics/${encodeURIComponent(name)}/records`, {
        method: "POST",
        body,
        headers: { "Content-Type": "application/json" },
      });
      replace(result, `Stored in partition ${stored.partition_id} at offset ${stored.offset}.`);
    } catch (failure) {
      replace(error, String(failure));
    }
  });
  return { node: form, close: null };
}
