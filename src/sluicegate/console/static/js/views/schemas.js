// Schemas: the registry's subjects, each subject's versions, a version's schema, a line
// diff between two versions (pretty-printed, computed here), and the compatibility
// level: the subject's own or the global default it inherits, set from here.

import { api, ApiError } from "../api.js";
import { errorBox, field, h, replace, status } from "../dom.js";
import { lineDiff, prettySchema } from "./linediff.js";
import { useOpsStyle } from "./ops-style.js";

// The levels the registry takes, as its OpenAPI document lists them: the server keeps the
// one list, and a page asks for it once.
let levelsAsked = null;
function compatibilityLevels() {
  levelsAsked ??= api("/openapi/schema-registry.json").then(
    (spec) => spec.components.schemas.Config.properties.compatibilityLevel.enum,
    (failure) => {
      levelsAsked = null; // asked again next time, not failed for good
      throw failure;
    },
  );
  return levelsAsked;
}

function subjectPath(subject) {
  return encodeURIComponent(subject);
}

function subjectList(subjects, filter) {
  const wanted = filter.trim().toLowerCase();
  const shown = wanted ? subjects.filter((s) => s.toLowerCase().includes(wanted)) : subjects;
  if (!subjects.length) return h("p", { class: "muted" }, "No subject is registered.");
  if (!shown.length) return h("p", { class: "muted" }, `No subject contains “${filter}”.`);
  return h(
    "ul",
    { class: "subjects" },
    shown.map((s) => h("li", {}, h("a", { href: `#/schemas?subject=${encodeURIComponent(s)}` }, s))),
  );
}

function diffView(before, after, fromVersion, toVersion) {
  let lines;
  try {
    lines = lineDiff(prettySchema(before.schema), prettySchema(after.schema));
  } catch (failure) {
    return errorBox(failure.message);
  }
  const added = lines.filter((l) => l.op === "+").length;
  const removed = lines.filter((l) => l.op === "-").length;
  const marks = { " ": "", "+": "added", "-": "removed" };
  const words = { " ": "unchanged", "+": "added", "-": "removed" };
  return h(
    "div",
    {},
    h("p", { id: "diff-summary" }, `Version ${fromVersion} → ${toVersion}: ${added} line(s) added, ${removed} removed.`),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "diff", "aria-describedby": "diff-summary" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", class: "num" }, `v${fromVersion}`),
            h("th", { scope: "col", class: "num" }, `v${toVersion}`),
            h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Change")),
            h("th", { scope: "col" }, "Line"),
          ),
        ),
        h(
          "tbody",
          {},
          lines.map((line) =>
            h(
              "tr",
              { class: marks[line.op] || null },
              h("td", { class: "num muted" }, line.left ?? ""),
              h("td", { class: "num muted" }, line.right ?? ""),
              h("td", { "aria-label": words[line.op] }, line.op.trim()),
              h("td", {}, h("code", {}, line.text)),
            ),
          ),
        ),
      ),
    ),
  );
}

async function compatibility(subject) {
  // The subject's own level, or (404) the global default it inherits.
  const effective = await api(`/config/${subjectPath(subject)}`, { query: { defaultToGlobal: "true" } });
  let own = true;
  try {
    await api(`/config/${subjectPath(subject)}`);
  } catch (failure) {
    if (!(failure instanceof ApiError) || failure.status !== 404) throw failure;
    own = false;
  }
  return { level: effective.compatibilityLevel ?? effective.compatibility, own };
}

async function subjectView(subject, box, error) {
  const versions = await api(`/subjects/${subjectPath(subject)}/versions`);
  const fetchVersion = (v) => api(`/subjects/${subjectPath(subject)}/versions/${v}`);
  const latest = versions[versions.length - 1];
  const [level, levels] = await Promise.all([compatibility(subject), compatibilityLevels()]);

  const levelSelect = h(
    "select",
    { name: "compatibility" },
    levels.map((name) => h("option", { value: name, selected: name === level.level }, name)),
  );
  const levelNote = h("small", { class: "muted", id: "level-note" }, level.own ? "Set on this subject." : "Inherited from the global default.");
  const levelForm = h(
    "form",
    { class: "row", "aria-label": "Set the compatibility level" },
    field("Compatibility level", levelSelect),
    h("button", { type: "submit" }, "Save level"),
    levelNote,
  );
  levelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/config/${subjectPath(subject)}`, { method: "PUT", json: { compatibility: levelSelect.value } });
      replace(levelNote, "Set on this subject.");
      status(`Compatibility of ${subject}: ${levelSelect.value}`);
      replace(error);
    } catch (failure) {
      replace(error, String(failure));
    }
  });

  const versionSelect = h("select", { name: "version" }, versions.map((v) => h("option", { value: v, selected: v === latest }, `Version ${v}`)));
  const schemaBox = h("div");
  async function showVersion() {
    const found = await fetchVersion(versionSelect.value);
    replace(
      schemaBox,
      h(
        "dl",
        { class: "cards" },
        [
          ["Schema id", String(found.id)],
          ["Type", found.schemaType ?? "AVRO"],
          ["Version", String(found.version)],
        ].map(([label, value]) => h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, value))),
      ),
      h("pre", { class: "schema", tabindex: "0", "aria-label": `Schema of version ${found.version}` }, prettySchema(found.schema)),
    );
  }
  versionSelect.addEventListener("change", () => showVersion().catch((failure) => replace(error, String(failure))));

  const fromSelect = h("select", { name: "from" }, versions.map((v, i) => h("option", { value: v, selected: i === versions.length - 2 }, `Version ${v}`)));
  const toSelect = h("select", { name: "to" }, versions.map((v) => h("option", { value: v, selected: v === latest }, `Version ${v}`)));
  const diffBox = h("div", { "aria-live": "polite" });
  const diffForm = h(
    "form",
    { class: "row", "aria-label": "Compare versions" },
    field("From", fromSelect),
    field("To", toSelect),
    h("button", { type: "submit" }, "Compare"),
  );
  diffForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const [before, after] = await Promise.all([fetchVersion(fromSelect.value), fetchVersion(toSelect.value)]);
      replace(diffBox, diffView(before, after, fromSelect.value, toSelect.value));
    } catch (failure) {
      replace(error, String(failure));
    }
  });

  replace(
    box,
    h("h2", {}, subject),
    h("p", {}, h("a", { href: "#/schemas" }, "All subjects"), ` · ${versions.length} version(s)`),
    levelForm,
    h("h3", {}, "Versions"),
    h("form", { class: "row", "aria-label": "Show a version" }, field("Version", versionSelect)),
    schemaBox,
    h("h3", {}, "Diff between two versions"),
    versions.length < 2 ? h("p", { class: "muted" }, "One version only: nothing to compare yet.") : [diffForm, diffBox],
  );
  await showVersion();
}

export default async function schemas(main, params, context) {
  useOpsStyle();
  const chosen = context.query.get("subject");
  const error = errorBox();
  const box = h("div");
  main.append(h("section", { "aria-labelledby": "schemas-title" }, h("h1", { id: "schemas-title" }, "Schemas"), error, box));
  try {
    if (chosen) {
      await subjectView(chosen, box, error);
      return;
    }
    const [subjects, global] = await Promise.all([api("/subjects"), api("/config")]);
    const filter = h("input", { type: "search", name: "filter", autocomplete: "off" });
    const list = h("div", {}, subjectList(subjects, ""));
    filter.addEventListener("input", () => replace(list, subjectList(subjects, filter.value)));
    replace(
      box,
      h("p", {}, `Global compatibility level: `, h("strong", {}, global.compatibilityLevel ?? global.compatibility ?? "—"), `. ${subjects.length} subject(s).`),
      h("div", { class: "toolbar" }, field("Filter subjects", filter)),
      list,
    );
  } catch (failure) {
    replace(error, String(failure));
  }
}
