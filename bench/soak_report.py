"""The soak's goals, judged from its samples, and its plot.

Each goal is ``{"ok": bool, "detail": str}``:

- ``rss``: the mean RSS of the last quarter of the samples is within 10% of the first
  quarter's;
- ``wal``: the WAL never passes twice its size limit, and has no growth trend: a line
  fitted through the samples after the first quarter rises by less than a quarter of
  the limit over the whole run;
- ``data_dir``: at the end, the data directory holds at most twice the bytes of the
  records stored;
- ``fds``: once every client has left, the server has no more descriptors open than
  before the load began;
- ``metric_series``: no topic name appears in ``/metrics``, and the second half of the
  run adds no series to the most the first half had (labels are route templates);
- ``errors``: no well-formed request failed.

With the consumers (``bench.soak_consumers``):

- ``events``: every CloudEvent whose produce was acknowledged reached both consumer
  groups (the long-polling one and the WebSocket one), and no event that was never
  produced reached either;
- ``walks``: each topics v1 cursor walk saw as many records as the load had
  acknowledged on its topic;
- ``idle_instances``: every burst made all its idle instances and each of them was gone
  (404) once its idle timeout had passed, and their memory came back for reuse: a later
  burst raised RSS by at most half what the first did (or ``BURST_SLACK``). RSS itself is
  not expected to fall: Python keeps freed arenas for the objects that come next.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from statistics import fmean
from typing import Any

__all__ = ["WAL_SIZE_LIMIT", "judge", "plot"]

#: The server's default ``storage.wal_size_limit``, which the soak does not change.
WAL_SIZE_LIMIT = 16 * 1024 * 1024
MiB = 1024 * 1024
#: What a later idle burst may add to RSS whatever the first added: the run's other
#: growth (new topics) over the minute or two a burst takes.
BURST_SLACK = 1 * MiB


def _goal(ok: bool, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``y`` over ``x`` (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = fmean(x for x, _ in points)
    mean_y = fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def judge(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every goal of the soak, met or not, with the figures that decided it."""
    samples = report["samples"]
    if len(samples) < 8:
        short = _goal(False, f"only {len(samples)} samples: run longer")
        return {"samples": short}
    quarter = len(samples) // 4
    first, last = samples[:quarter], samples[-quarter:]
    rss_first = fmean(s["rss_bytes"] for s in first)
    rss_last = fmean(s["rss_bytes"] for s in last)
    growth = rss_last / rss_first - 1

    wal_max = max(s["wal_bytes"] for s in samples)
    duration = samples[-1]["t"] - samples[0]["t"]
    wal_rise = _slope([(s["t"], s["wal_bytes"]) for s in samples[quarter:]]) * duration

    stored = samples[-1]["stored_bytes"]
    data_dir = samples[-1]["data_dir_bytes"]
    # While the load runs the WAL is on top; the records stored then are fewer.
    peak = max(s["data_dir_bytes"] / max(s["stored_bytes"], 1) for s in samples[quarter:])

    half = len(samples) // 2
    # A sample whose scrape failed has no series count (the failure is an error).
    series_first = max((s["metric_series"] or 0) for s in samples[:half])
    series_second = max((s["metric_series"] or 0) for s in samples[half:])
    leaked = any(s["topic_name_in_metrics"] for s in samples)

    tally = report["tally"]
    # A starved load generator meets closed connections and timeouts of its own making.
    client_lag = max((s.get("client_lag_s") or 0.0) for s in samples)
    goals = {
        "rss": _goal(
            growth <= 0.10,
            f"last quarter {rss_last / MiB:.1f} MiB vs first {rss_first / MiB:.1f} MiB "
            f"({growth:+.1%})",
        ),
        "wal": _goal(
            wal_max <= 2 * WAL_SIZE_LIMIT and wal_rise < WAL_SIZE_LIMIT / 4,
            f"max {wal_max / MiB:.1f} MiB (limit {WAL_SIZE_LIMIT / MiB:.0f} MiB), trend "
            f"{wal_rise / MiB:+.1f} MiB over the run",
        ),
        "data_dir": _goal(
            data_dir <= 2 * stored,
            f"{data_dir / MiB:.1f} MiB for {stored / MiB:.1f} MiB of records "
            f"({data_dir / max(stored, 1):.2f}x; at most {peak:.2f}x after the first quarter)",
        ),
        "fds": _goal(
            report["fds_after"] <= report["fds_baseline"],
            f"{report['fds_after']} after the clients left, {report['fds_baseline']} before "
            f"the load (peak {max(s['fds'] for s in samples)})",
        ),
        "metric_series": _goal(
            not leaked and series_second <= series_first,
            f"{series_second} series at most in the second half, {series_first} in the "
            f"first; topic names in /metrics: {'yes' if leaked else 'no'}",
        ),
        "errors": _goal(
            tally["errors"] == 0,
            f"{tally['errors']} errors in {tally['ok'] + tally['errors']:,} well-formed "
            f"requests ({tally['skipped']} skipped while the server was behind, "
            f"{tally['dropped_clients']:,} dropped clients, "
            f"{tally['topics_created']:,} topics created; the soak's own loop stalled "
            f"{client_lag:.1f} s at worst)",
        ),
    }
    if report.get("consumers") is not None:
        goals |= _consumer_goals(report)
    return goals


def _consumer_goals(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    consumers = report["consumers"]
    produced = consumers["ce_produced"]
    poll_missing, ws_missing = consumers["poll_missing"], consumers["ws_missing"]
    unexpected = consumers["unexpected"]
    events = _goal(
        produced > 0 and poll_missing == 0 and ws_missing == 0 and unexpected == 0,
        f"{produced:,} events acknowledged ({consumers['ce_uncertain']} uncertain); "
        f"missed by soak-poll {poll_missing:,}, by soak-ws {ws_missing:,} "
        f"({consumers['poll_received']:,} and {consumers['ws_received']:,} received, "
        f"repeats included; {consumers['ws_connections']} WebSocket connections); "
        f"never produced {unexpected}",
    )

    walked, acknowledged = consumers["walks"], consumers["acknowledged"]
    walks = _goal(
        bool(acknowledged)
        and all(0 < n <= walked.get(topic, 0) for topic, n in acknowledged.items()),
        ", ".join(f"{t} {walked.get(t, 0):,} of {n:,} records" for t, n in acknowledged.items()),
    )

    settings = report["config"]["consumers"]
    bursts = consumers["bursts"]
    made = all(b["created"] == settings["idle_instances"] for b in bursts)
    gone = all(b["still_alive"] == 0 for b in bursts)
    rises = [b["rss_with"] - b["rss_before"] for b in bursts]
    reused = all(rise <= max(rises[0] / 2, BURST_SLACK) for rise in rises[1:])
    shown = "; ".join(
        f"{b['created']:,} made, {b['instances_with']:,} live at once, "
        f"{b['still_alive']} alive {b['expired_after_s']:g} s after last use, "
        f"RSS {b['rss_before'] / MiB:.1f} -> {b['rss_with'] / MiB:.1f} -> "
        f"{b['rss_after'] / MiB:.1f} MiB"
        for b in bursts
    )
    idle = _goal(
        len(bursts) == len(settings["idle_bursts_at"]) >= 2 and made and gone and reused,
        f"{len(bursts)} bursts: {shown or 'none'}",
    )
    return {"events": events, "walks": walks, "idle_instances": idle}


def _or_nan(value: float | None, scale: float = 1.0) -> float:
    """A sampled figure for the plot; a failed scrape leaves a gap."""
    return float("nan") if value is None else value * scale


def plot(report: dict[str, Any], out: Path) -> None:
    """Every sampled series against time, one panel each, into the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    samples = report["samples"]
    minutes = [s["t"] / 60 for s in samples]
    rates = [0.0] + [(b["ok"] - a["ok"]) / max(b["t"] - a["t"], 1e-9) for a, b in pairwise(samples)]
    panels: list[tuple[str, list[tuple[str, list[float]]]]] = [
        ("RSS (MiB)", [("server + commit process", [s["rss_bytes"] / MiB for s in samples])]),
        (
            "descriptors and consumer instances",
            [
                ("open descriptors", [s["fds"] for s in samples]),
                ("consumer instances", [_or_nan(s.get("consumer_instances")) for s in samples]),
            ],
        ),
        (
            "event-loop lag (ms)",
            [("worst of 10 s", [_or_nan(s["loop_lag_s"], 1000) for s in samples])],
        ),
        ("/metrics series", [("series", [_or_nan(s["metric_series"]) for s in samples])]),
        (
            "disk (MiB)",
            [
                ("data directory", [s["data_dir_bytes"] / MiB for s in samples]),
                ("records stored", [s["stored_bytes"] / MiB for s in samples]),
                ("WAL", [s["wal_bytes"] / MiB for s in samples]),
            ],
        ),
        (
            "requests",
            [
                ("answered per second", rates),
                ("topics created (hundreds)", [s["topics_created"] / 100 for s in samples]),
                ("errors (cumulative)", [s["errors"] for s in samples]),
                ("events (hundreds)", [s.get("events_produced", 0) / 100 for s in samples]),
            ],
        ),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    for ax, (title, lines) in zip(axes.flat, panels, strict=True):
        for label, values in lines:
            ax.plot(minutes, values, label=label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("minutes")
    goals = report.get("goals", {})
    verdict = ", ".join(f"{name} {'ok' if g['ok'] else 'FAIL'}" for name, g in goals.items())
    figure.suptitle(f"sluicegate soak, {report['config']['minutes']:g} min: {verdict}")
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)
