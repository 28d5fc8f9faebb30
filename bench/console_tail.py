"""The console's live tail in a real browser at 5,000 records a second.

    python -m bench.console_tail [--seconds 60] [--rate 5000]

A ``sluicegate serve`` on the embedded log; Debian's Chromium (Playwright, the
``/usr/bin/chromium`` the console's tests use) signs in and opens a three-partition
topic's live tail; this process then produces ``--rate`` records a second to it for
``--seconds`` (batches of 250 through ``POST /admin/v1/topics/{name}/records``, on a
schedule), and every 5 s reads the page's JavaScript heap (the DevTools protocol's
``Performance.getMetrics``, after a garbage collection) and the tail's own count of
records received and rows shown.

What the issue asks: the tail keeps up (the page counts every record produced, within
a few seconds of the last) and the page's memory does not grow past a bounded window
(the heap in the last quarter of the run within 10% of the first quarter's, or 2 MiB).
``bench.run --only console-tail`` writes ``console-tail-*`` entries.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from sluicegate.testing.chromium import CHROMIUM, CHROMIUM_ARGS
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

ADMIN_KEY = "sg_bench_console_tail_key_0123456789abcdef"
TOPIC = "tail.bench"
BATCH = 250
SAMPLE_EVERY = 5.0
#: "12,345 records received; the newest 500 shown, newest first."
_COUNTER = re.compile(r"([\d,]+) records received; the newest ([\d,]+) shown")
MiB = 1 << 20


def _counter(text: str) -> tuple[int, int]:
    found = _COUNTER.search(text)
    if found is None:
        return 0, 0
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def measure(seconds: float, rate: int) -> dict[str, Any]:
    """Produce ``rate`` records a second for ``seconds`` to a tail open in Chromium."""
    env = {"SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    samples: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as data,
        tempfile.TemporaryDirectory() as profile,
        serve_in_subprocess(data, args=(), env=env) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as admin,
        sync_playwright() as playwright,
    ):
        made = admin.post("/admin/v1/topics", json={"name": TOPIC, "partitions": 3})
        made.raise_for_status()
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = context.new_page()
        page.goto(f"{server.url}/console#/signin")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Topics", exact=True).wait_for()
        page.goto(f"{server.url}/console#/topics/{TOPIC}")
        page.get_by_text("Live: waiting for new records").wait_for(timeout=30_000)
        devtools = context.new_cdp_session(page)
        devtools.send("Performance.enable")
        status = page.get_by_role("status").filter(has_text="records")

        def sample(at: float, produced: int) -> None:
            devtools.send("HeapProfiler.collectGarbage")
            metrics = devtools.send("Performance.getMetrics")["metrics"]
            heap = next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize")
            nodes = next(m["value"] for m in metrics if m["name"] == "Nodes")
            text = status.all_inner_texts()
            received, shown = _counter(" ".join(text))
            samples.append(
                {
                    "t": round(at, 1),
                    "produced": produced,
                    "received": received,
                    "rows": shown,
                    "heap_bytes": heap,
                    "dom_nodes": nodes,
                }
            )

        produced = 0
        started = time.monotonic()
        next_sample = started + SAMPLE_EVERY
        batches = int(seconds * rate / BATCH)
        for n in range(batches):
            due = started + n * BATCH / rate
            while (now := time.monotonic()) < due:
                if now >= next_sample:
                    sample(now - started, produced)
                    next_sample += SAMPLE_EVERY
                else:
                    page.wait_for_timeout(min(due - now, next_sample - now) * 1000)
            records = [{"value": json.dumps({"n": produced + i})} for i in range(BATCH)]
            sent = admin.post(f"/admin/v1/topics/{TOPIC}/records", json={"records": records})
            sent.raise_for_status()
            produced += BATCH
        finished = time.monotonic()
        behind = finished - started - seconds
        # How long after the last batch's answer the page had counted every record.
        while (caught_up := time.monotonic() - finished) < 30:
            if _counter(" ".join(status.all_inner_texts()))[0] >= produced:
                break
            page.wait_for_timeout(100)
        sample(time.monotonic() - started, produced)
        context.close()
    quarter = max(1, len(samples) // 4)
    first = statistics.fmean(s["heap_bytes"] for s in samples[:quarter])
    last = statistics.fmean(s["heap_bytes"] for s in samples[-quarter:])
    final = samples[-1]
    return {
        "seconds": seconds,
        "rate_asked": rate,
        "rate_produced": round(produced / (seconds + max(behind, 0.0)), 1),
        "produced": produced,
        "received": final["received"],
        "caught_up_after_s": round(caught_up, 2),
        "rows_shown": final["rows"],
        "heap_first_quarter_mib": round(first / MiB, 2),
        "heap_last_quarter_mib": round(last / MiB, 2),
        "heap_growth": round(last / first - 1, 3),
        "bounded": last <= max(first * 1.1, first + 2 * MiB),
        "samples": samples,
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """``bench.run``'s entry: the tail at 5,000 records a second for six times ``duration``."""
    result = measure(max(30.0, duration * 6), 5000)
    return {
        "console-tail-received": {
            "value": result["received"],
            "unit": "records shown as received",
            "baseline": result["produced"],
            "ratio": round(result["received"] / result["produced"], 3),
            "rate_produced": result["rate_produced"],
        },
        "console-tail-heap-growth": {
            "value": result["heap_last_quarter_mib"],
            "unit": "MiB JS heap, last quarter",
            "baseline": result["heap_first_quarter_mib"],
            "ratio": round(1 + result["heap_growth"], 3),
            "bounded": result["bounded"],
            "rows_shown": result["rows_shown"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=5000)
    args = parser.parse_args()
    result = measure(args.seconds, args.rate)
    for s in result.pop("samples"):
        print(
            f"{s['t']:6.1f} s  produced {s['produced']:>8,}  received {s['received']:>8,}  "
            f"rows {s['rows']:>4}  heap {s['heap_bytes'] / MiB:6.2f} MiB  "
            f"DOM nodes {s['dom_nodes']:>6,.0f}"
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
