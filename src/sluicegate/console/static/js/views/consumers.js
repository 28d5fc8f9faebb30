// Consumers: the consumer groups this node knows with their lag (one group's partitions
// when one is chosen), and the CloudEvents consumer instances it holds. Refreshed every
// few seconds; the gateway takes the group figures again at most every 5 s.

import { api, apiPage } from "../api.js";
import { errorBox, formatNumber, h, replace } from "../dom.js";
import { every, formatSeconds } from "./durations.js";
import { useOpsStyle } from "./ops-style.js";

const REFRESH_MS = 3000;
const PAGE = 100;

function groupLink(name) {
  return h("a", { href: `#/consumers?group=${encodeURIComponent(name)}` }, name);
}

function table(caption, columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "muted" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map(([title, numeric, narrow]) =>
            h("th", { scope: "col", class: [numeric ? "num" : "", narrow ? "hide-narrow" : ""].join(" ").trim() || null }, title),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            cells.map((cell, index) => {
              const [, numeric, narrow] = columns[index];
              const cls = [numeric ? "num" : "", narrow ? "hide-narrow" : ""].join(" ").trim() || null;
              return h("td", { class: cls }, cell);
            }),
          ),
        ),
      ),
    ),
  );
}

function groupsTable(groups) {
  if (!groups.length) {
    return h("p", { class: "muted" }, "No consumer group is known to this node yet: groups show once a consumer reads here.");
  }
  return table(
    "Consumer groups, by name",
    [
      ["Group"],
      ["Instances", true],
      ["Lag", true],
      ["Oldest unconfirmed", true],
      ["Deliveries", true, true],
      ["Redeliveries", true, true],
      ["Dead letters", true, true],
    ],
    groups.map((g) => [
      groupLink(g.group),
      formatNumber(g.instances),
      formatNumber(g.lag),
      formatSeconds(g.oldest_unconfirmed_age),
      formatNumber(g.deliveries),
      formatNumber(g.redeliveries),
      formatNumber(g.dead_letters),
    ]),
  );
}

function groupDetail(group) {
  const rows = group.partitions.map((p) => [
    p.topic,
    formatNumber(p.partition),
    formatNumber(p.committed),
    formatNumber(p.high_watermark),
    formatNumber(p.lag),
    formatSeconds(p.oldest_unconfirmed_age),
  ]);
  return h(
    "section",
    { "aria-labelledby": "group-title" },
    h("h2", { id: "group-title" }, `Group ${group.group}`),
    h(
      "dl",
      { class: "cards" },
      [
        ["Lag", formatNumber(group.lag), "group-lag"],
        ["Live instances here", formatNumber(group.instances)],
        ["Oldest unconfirmed", formatSeconds(group.oldest_unconfirmed_age)],
        ["Dead-lettered after", group.max_deliveries ? `${group.max_deliveries} deliveries` : "never"],
      ].map(([label, value, id]) => h("div", { class: "card" }, h("dt", {}, label), h("dd", { id }, value))),
    ),
    rows.length
      ? table(
          "Committed position and lag per partition",
          [["Topic"], ["Partition", true], ["Committed", true], ["High watermark", true], ["Lag", true], ["Oldest unconfirmed", true]],
          rows,
        )
      : h("p", { class: "muted" }, "The group has committed no position yet."),
    h("p", {}, h("a", { href: "#/consumers" }, "All groups")),
  );
}

function instancesTable(instances) {
  if (!instances.length) {
    return h("p", { class: "muted" }, "No CloudEvents consumer instance is live on this node.");
  }
  return table(
    "CloudEvents consumer instances on this node, by client and group",
    [
      ["Instance", false, true],
      ["Client"],
      ["Group"],
      ["Node", false, true],
      ["Kind"],
      ["Age", true],
      ["Unconfirmed", true],
      ["Idle", true],
    ],
    instances.map((i) => [
      h("code", { title: i.id }, `${i.id.slice(0, 8)}…`),
      i.client,
      groupLink(i.group),
      i.node,
      { long_poll: "long poll", websocket: "WebSocket", sse: "Server-Sent Events" }[i.kind] ?? i.kind,
      formatSeconds(i.age),
      formatNumber(i.unconfirmed),
      formatSeconds(i.idle),
    ]),
  );
}

export default async function consumers(main, params, context) {
  useOpsStyle();
  const chosen = context.query.get("group");
  const error = errorBox();
  const groupsBox = h("div", { "aria-live": "off" });
  const instancesBox = h("div");
  const pager = h("div", { class: "pager" });
  let cursors = [null]; // the cursor of each instance page seen, for "Previous"
  let page = 0;

  main.append(
    h(
      "section",
      { "aria-labelledby": "consumers-title" },
      h("h1", { id: "consumers-title" }, "Consumers"),
      h(
        "p",
        { class: "muted" },
        "Topics v1 consumers are not listed: their cursors are stateless, carried by each request, so the gateway holds nothing for them. ",
        "Figures are this node's, refreshed every few seconds.",
      ),
      error,
      h("h2", {}, chosen ? "Consumer group" : "Consumer groups"),
      groupsBox,
      h("h2", {}, "CloudEvents consumer instances"),
      instancesBox,
      pager,
    ),
  );

  async function loadGroups() {
    if (chosen) {
      const group = await api(`/admin/v1/groups/${chosen.split("/").map(encodeURIComponent).join("/")}`);
      replace(groupsBox, groupDetail(group));
    } else {
      const { items } = await apiPage("/admin/v1/groups", { query: { limit: PAGE } });
      replace(groupsBox, groupsTable(items));
    }
  }

  async function loadInstances() {
    const query = { limit: PAGE, cursor: cursors[page], group: chosen };
    const { items, next } = await apiPage("/admin/v1/consumers", { query });
    replace(instancesBox, instancesTable(items));
    cursors = cursors.slice(0, page + 1);
    if (next) cursors.push(next);
    const previous = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Previous");
    const following = h("button", { type: "button", class: "secondary", disabled: !next }, "Next");
    previous.addEventListener("click", () => {
      page -= 1;
      refresh();
    });
    following.addEventListener("click", () => {
      page += 1;
      refresh();
    });
    replace(pager, page === 0 && !next ? null : [previous, h("span", { class: "muted" }, `Page ${page + 1}`), following]);
  }

  async function refresh() {
    try {
      await Promise.all([loadGroups(), loadInstances()]);
      replace(error);
    } catch (failure) {
      replace(error, String(failure));
    }
  }

  await refresh();
  return every(REFRESH_MS, refresh);
}
