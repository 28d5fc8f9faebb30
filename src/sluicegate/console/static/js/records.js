// Records as the watch endpoints give them (decoded server-side), as table rows.
//
// What is shown is the server's `text`, never a value parsed in the page: JavaScript's
// numbers are doubles, and 9007199254740993 or 1.10 would not survive a parse and a
// stringify. JSON is pretty-printed by re-indenting its text, which leaves every number,
// string and duplicate member as stored.

import { formatNumber, h } from "./dom.js";

const KIND = { avro: "Avro", json_schema: "JSON Schema" };
// A value longer than this (characters or lines) is cut in the table, with a control
// that shows it all: one large record must not make a row thousands of pixels tall.
const CLIP_CHARS = 2000;
const CLIP_LINES = 30;

// JSON text re-indented two spaces a level, as JSON.stringify(value, null, 2) lays it
// out, without reading any value: tokens are copied as they are.
export function reindent(text) {
  let out = "";
  let depth = 0;
  const newline = () => `\n${"  ".repeat(depth)}`;
  const blank = (c) => c === " " || c === "\t" || c === "\n" || c === "\r";
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (blank(c)) {
      continue;
    } else if (c === "{" || c === "[") {
      let j = i + 1;
      while (j < text.length && blank(text[j])) j += 1;
      if (text[j] === (c === "{" ? "}" : "]")) {
        out += c + text[j];
        i = j;
      } else {
        depth += 1;
        out += c + newline();
      }
    } else if (c === "}" || c === "]") {
      depth -= 1;
      out += newline() + c;
    } else if (c === ",") {
      out += `,${newline()}`;
    } else if (c === ":") {
      out += ": ";
    } else {
      out += c;
    }
  }
  return out;
}

// Where to cut `text` for the table, or -1 when it is short enough to show whole.
function cutAt(text) {
  let cut = text.length > CLIP_CHARS ? CLIP_CHARS : -1;
  let line = 0;
  for (let i = text.indexOf("\n"); i >= 0 && (cut < 0 || i < cut); i = text.indexOf("\n", i + 1)) {
    line += 1;
    if (line === CLIP_LINES) {
      cut = i;
      break;
    }
  }
  return cut;
}

// `text` in a `tag` element, cut when long, with a button that shows all of it (and
// back). The button says how much is hidden.
function clipped(tag, attributes, text) {
  const cut = cutAt(text);
  if (cut < 0) return h(tag, attributes, text);
  const shown = h(tag, attributes, `${text.slice(0, cut)}…`);
  const more = `Show all ${formatNumber(text.length)} characters`;
  const toggle = h("button", { type: "button", class: "link", "aria-expanded": "false" }, more);
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    shown.textContent = open ? text : `${text.slice(0, cut)}…`;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Show less" : more;
  });
  return h("div", { class: "clipped" }, shown, toggle);
}

function jsonNode(payload) {
  const text = payload.text ?? JSON.stringify(payload.data);
  return clipped("pre", { class: "json" }, reindent(text));
}

export function payloadNode(payload) {
  switch (payload.encoding) {
    case "null":
      return h("span", { class: "muted" }, "null");
    case "text":
      return clipped("span", { class: "text" }, payload.text);
    case "json":
      return jsonNode(payload);
    case "avro":
    case "json_schema":
      return h("div", {}, h("span", { class: "badge" }, `${KIND[payload.encoding]} · schema ${payload.schema_id}`), jsonNode(payload));
    default:
      return h(
        "div",
        {},
        h("span", { class: "badge" }, "binary, base64"),
        payload.error ? h("span", { class: "error" }, payload.error) : null,
        clipped("code", {}, payload.text ?? ""),
      );
  }
}

function cloudEventNode(attributes) {
  return h(
    "ul",
    { class: "attrs", "aria-label": "CloudEvent attributes" },
    h("li", {}, h("span", { class: "badge" }, "CloudEvent")),
    Object.entries(attributes).map(([name, value]) => h("li", {}, `${name}: ${value}`)),
  );
}

// A header as "name: value"; one that is not UTF-8 comes as base64, and says so.
function headerNode(header) {
  if (header.encoding === "base64") {
    return h("li", {}, `${header.name}: `, h("span", { class: "badge" }, "base64"), clipped("code", {}, header.value));
  }
  return h("li", {}, clipped("span", {}, `${header.name}: ${header.value}`));
}

export function recordRow(record) {
  // The ce_ headers shown as CloudEvent attributes are not listed again; any other
  // (one that is not UTF-8, say) is.
  const attributes = record.cloudevent ?? {};
  const headers = record.headers.filter(
    (header) => !(header.encoding !== "base64" && header.name.startsWith("ce_") && header.name.slice(3) in attributes),
  );
  return h(
    "tr",
    { dataset: { partition: record.partition, offset: record.offset } },
    h("td", {}, new Date(record.timestamp).toISOString().replace("T", " ").replace("Z", "")),
    h("td", { class: "num" }, record.partition),
    h("td", { class: "num" }, record.offset),
    h("td", {}, payloadNode(record.key)),
    h(
      "td",
      { class: "value" },
      record.cloudevent ? cloudEventNode(record.cloudevent) : null,
      payloadNode(record.value),
      headers.length ? h("ul", { class: "attrs", "aria-label": "Headers" }, headers.map(headerNode)) : null,
    ),
  );
}

export function recordsTable(caption, body) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "tail" },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Time (UTC)"),
          h("th", { scope: "col", class: "num" }, "Partition"),
          h("th", { scope: "col", class: "num" }, "Offset"),
          h("th", { scope: "col" }, "Key"),
          h("th", { scope: "col" }, "Value"),
        ),
      ),
      body,
    ),
  );
}
