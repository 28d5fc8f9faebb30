// The retention fields shared by creating and altering a topic: time in hours and size
// in MiB, empty meaning "keep forever" (null in the API).

import { field, h } from "../dom.js";

const HOUR_MS = 3_600_000;
const MIB = 1024 * 1024;

function number(value, scale) {
  return value === null || value === undefined ? "" : String(value / scale);
}

export function retentionFields(topic) {
  const hours = h("input", { name: "retention-hours", type: "number", min: 0, step: "any", value: number(topic.retention_ms, HOUR_MS) });
  const mib = h("input", { name: "retention-mib", type: "number", min: 0, step: "any", value: number(topic.retention_bytes, MIB) });
  return {
    fields: [
      field("Retention (hours)", hours, "Empty: keep records forever"),
      field("Size limit (MiB)", mib, "Empty: no limit"),
    ],
    values() {
      return {
        retention_ms: hours.value === "" ? null : Math.round(Number(hours.value) * HOUR_MS),
        retention_bytes: mib.value === "" ? null : Math.round(Number(mib.value) * MIB),
      };
    },
    // Only the values whose field was edited: one shown in hours or MiB and sent back
    // untouched would come back rounded (1234567890123456789 ms is no exact double).
    changed() {
      const all = this.values();
      const patch = {};
      if (hours.value !== hours.defaultValue) patch.retention_ms = all.retention_ms;
      if (mib.value !== mib.defaultValue) patch.retention_bytes = all.retention_bytes;
      return patch;
    },
  };
}
