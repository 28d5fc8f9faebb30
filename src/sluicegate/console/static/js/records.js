// Records as the watch endpoints give them (decoded server-side), as table rows.

import { h } from "./dom.js";

const KIND = { avro: "Avro", json_schema: "JSON Schema" };

export function payloadNode(payload) {
  switch (payload.encoding) {
    case "null":
      return h("span", { class: "muted" }, "null");
    case "text":
      return h("span", { class: "text" }, payload.text);
    case "json":
      return h("pre", { class: "json" }, JSON.stringify(payload.data, null, 2));
    case "avro":
    case "json_schema":
      return h(
        "div",
        {},
        h("span", { class: "badge" }, `${KIND[payload.encoding]} · schema ${payload.schema_id}`),
        h("pre", { class: "json" }, JSON.stringify(payload.data, null, 2)),
      );
    default:
      return h(
        "div",
        {},
        h("span", { class: "badge" }, "binary, base64"),
        payload.error ? h("span", { class: "error" }, payload.error) : null,
        h("code", {}, payload.text ?? ""),
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

export function recordRow(record) {
  const headers = record.headers.filter((header) => !record.cloudevent || !header.name.startsWith("ce_"));
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
      headers.length
        ? h("ul", { class: "attrs", "aria-label": "Headers" }, headers.map((header) => h("li", {}, `${header.name}: ${header.value}`)))
        : null,
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
