// A line diff of two texts, computed here in the browser: the longest common
// subsequence of their lines (dynamic programming over the two line lists), then the
// edit script that keeps it. Schemas are short (tens to hundreds of lines once
// pretty-printed), so the table stays small: 2,000 × 2,000 lines is 4 M cells.

export const MAX_CELLS = 4_000_000;

// [{op: " " | "-" | "+", text, left, right}]: left/right are 1-based line numbers of
// the line in each text (null where it is not in that text).
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  // Lines equal at both ends need no table: most versions change little.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  ) {
    tail += 1;
  }
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const n = midA.length;
  const m = midB.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    throw new RangeError(`too many lines to compare (${a.length} and ${b.length})`);
  }
  // lcs[i][j]: the common subsequence length of midA[i:] and midB[j:], row-major.
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i * width + j] =
        midA[i] === midB[j]
          ? lcs[(i + 1) * width + j + 1] + 1
          : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const out = [];
  for (let k = 0; k < head; k += 1) out.push({ op: " ", text: a[k], left: k + 1, right: k + 1 });
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && midA[i] === midB[j]) {
      out.push({ op: " ", text: midA[i], left: head + i + 1, right: head + j + 1 });
      i += 1;
      j += 1;
    } else if (i < n && (j === m || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])) {
      // Removals before additions, as diff(1) shows a changed line.
      out.push({ op: "-", text: midA[i], left: head + i + 1, right: null });
      i += 1;
    } else {
      out.push({ op: "+", text: midB[j], left: null, right: head + j + 1 });
      j += 1;
    }
  }
  for (let k = 0; k < tail; k += 1) {
    out.push({
      op: " ",
      text: a[a.length - tail + k],
      left: a.length - tail + k + 1,
      right: b.length - tail + k + 1,
    });
  }
  return out;
}

// A schema as the registry stores it (a JSON text, or Protobuf's own syntax), laid out
// one field per line so that a diff shows what changed.
export function prettySchema(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
