"""Run every benchmark; write ``bench/results/latest.json`` and print a table.

    python -m bench.run [--duration SECONDS] [--only NAME ...]

Each entry is ``{"value", "unit", "baseline", "ratio"}``; the baseline is measured in
the same run (see each module's docstring for what it is).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

MODULES = {
    "storage": "bench.storage_append",
    "http": "bench.http_produce",
    "auth": "bench.auth_overhead",
    "topics-v1": "bench.topics_v1",
    "topics-v1-throughput": "bench.topics_v1_throughput",
    "cpu": "bench.instructions",
    "kafka": "bench.kafka_produce",
    "topic-memory": "bench.topic_memory",
    "kafka-consume": "bench.kafka_consume",
    "kafka-log": "bench.kafka_log_append",
    "kafka-idle": "bench.kafka_idle_connections",
    "kafka-cpu": "bench.kafka_batch_cpu",
    "h2": "bench.http2",
    "cloudevents-produce": "bench.cloudevents_produce",
    "cloudevents-dedup": "bench.cloudevents_dedup",
    "cloudevents-consume": "bench.cloudevents_consume",
    "cloudevents-ws": "bench.cloudevents_ws",
    "cloudevents-sse": "bench.cloudevents_sse",
    "cluster": "bench.cluster_forwarding",
    "delivery-counting": "bench.delivery_counting",
    "group-shards": "bench.group_shards",
    "console-topics": "bench.console_pages",
    "console-ops": "bench.console",
    "console-tail": "bench.console_tail",
}
#: Names for several groups at once.
ALIASES = {
    # The topics pages (bench.console_pages), the operations pages (bench.console) and
    # the live tail in Chromium (bench.console_tail).
    "console": ("console-topics", "console-ops", "console-tail"),
    "kafka-all": ("kafka-log", "kafka", "kafka-cpu", "kafka-consume", "kafka-idle"),
    "cloudevents": (
        "cloudevents-produce",
        "cloudevents-dedup",
        "cloudevents-consume",
        "cloudevents-ws",
        "cloudevents-sse",
    ),
}
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--only", nargs="*", choices=sorted([*MODULES, *ALIASES]), help="benchmark groups"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    groups = [name for group in args.only or MODULES for name in ALIASES.get(group, (group,))]
    for group in groups:
        module = importlib.import_module(MODULES[group])
        results.update(module.run(args.duration))
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
    }
    (RESULTS / "latest.json").write_text(json.dumps({**results, "_meta": meta}, indent=2) + "\n")
    table = Table(title="sluicegate benchmarks (ratios against same-run baselines)")
    for column in ("benchmark", "value", "unit", "baseline", "ratio"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, entry in results.items():
        table.add_row(
            name,
            f"{entry['value']:,}",
            entry["unit"],
            f"{entry['baseline']:,}",
            str(entry["ratio"]),
        )
    Console().print(table)
    print(f"wrote {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
