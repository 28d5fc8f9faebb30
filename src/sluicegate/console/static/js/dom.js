// Building the page without innerHTML: every text from the server is a text node.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

let ids = 0;
// A unique id for pairing a label with its control.
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled form field: [label, control] wrapped in a div.
export function field(label, control, hint) {
  control.id ||= uid("f");
  const hintId = hint ? uid("hint") : undefined;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { id: hintId }, hint) : null,
  );
}

// An alert that announces an error (or nothing).
export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error ? String(error) : "");
}

export function status(text) {
  const region = document.getElementById("status");
  region.textContent = text;
  clearTimeout(status.timer);
  status.timer = setTimeout(() => {
    region.textContent = "";
  }, 5000);
}

export function formatNumber(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("en");
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "forever";
  const units = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["min", 60_000],
    ["s", 1000],
  ];
  for (const [unit, size] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  }
  return `${ms} ms`;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || bytes < 0) return "unbounded";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
