// Seconds as people read them on the operations pages: "850 ms", "42 s", "3 min 5 s".

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const units = [
    ["d", 86_400],
    ["h", 3_600],
    ["min", 60],
    ["s", 1],
  ];
  const parts = [];
  let rest = whole;
  for (const [unit, size] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)} ${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

// A refresh every `ms` while the page is shown, skipped while the previous one runs;
// returns the function that stops it (a view's cleanup).
export function every(ms, refresh) {
  let running = false;
  const timer = setInterval(async () => {
    if (running || document.hidden) return;
    running = true;
    try {
      await refresh();
    } finally {
      running = false;
    }
  }, ms);
  return () => clearInterval(timer);
}
