"""CPU per event of the CloudEvents consume path, in process, without HTTP.

    python -m bench.consume_cpu [--events N] [--profile FILE] [--path longpoll|stream]
                                [--backend sqlite|kafka] [--bootstrap HOST:PORT]

A gateway on SQLite (its commit process, ``synchronous=FULL``), or on Kafka with
``--backend kafka`` (``--bootstrap``, else ``$SLUICEGATE_TEST_KAFKA_BOOTSTRAP``; topics
of a prefix of their own), is given ``N`` events of
the long-poll benchmark's shape (one type, 12 partitions, produced through the producer
core), then one consumer instance reads them all in batches of ``batch_size`` the way
the dialects do: ``longpoll`` confirms every batch before the next read and renders it as
one ``application/cloudevents-batch+json`` body (``GET …/events?confirm=true``; both
paths' confirmations are committed in the group's background rounds, as the dialects'
are, and the last one is awaited);
``stream`` renders each event as a message and frames them in bursts as ``/ce/ws`` does
under uvicorn (``websocket.bursts``, ``text_frames``), and confirms every 1,000. What is
counted is the consume side only: reading, filtering, delivery counting, rendering and
the confirms' commits (``time.process_time`` of every thread of this process; the commit
process is not counted; on Kafka, librdkafka's threads are, and the reader process, which
has a core of its own, is given apart, with the broker rounds it sent per 1,000 events).
Machine load stretches wall-clock time, not CPU time, so the figure stays comparable on
a busy machine; ``bench.instructions``-style counts come from
running this under callgrind with two sizes and subtracting (see the design notes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from bench.cloudevents_consume import EVENT
from sluicegate.cli.serve import tune_gc
from sluicegate.core.auth.principals import Principal
from sluicegate.core.cloudevents.binding import (
    from_structured,
    structured_batch_of,
    structured_events,
)
from sluicegate.core.cloudevents.consumers import EventSubscription
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import bursts
from sluicegate.http.websocket_bursts import text_frames
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.storage.kafka import KafkaLog
from tests.conftest import make_settings

__all__ = ["measure"]

PRODUCE_BATCH = 500


async def _produce(gateway: Gateway, principal: Principal, count: int) -> None:
    for start in range(0, count, PRODUCE_BATCH):
        events = [
            from_structured(
                msgspec.json.encode({**EVENT, "id": f"bench-{n}", "partitionkey": f"c-{n % 97}"})
            )
            for n in range(start, min(count, start + PRODUCE_BATCH))
        ]
        await gateway.event_producer.produce(principal, events, batch=True)


async def _consume(gateway: Gateway, principal: Principal, count: int, path: str) -> int:
    subscription = EventSubscription(
        principal, gateway.type_registry, gateway.event_topics, events=True, test=False, dead=False
    )
    group = f"ce/bench/{uuid.uuid4().hex}"
    instance = await gateway.consumers.create(principal.name, group, subscription)
    batch_size = gateway.settings.cloudevents.batch_size
    seen = rendered = 0
    while seen < count:
        if path == "longpoll":
            await instance.confirm(durable=False)
        batch = await instance.next_batch(batch_size, 0, None)
        if path == "longpoll":
            rendered += len(structured_batch_of(batch.records, batch.first))
        else:
            texts = structured_events(batch.records, batch.first)
            for start, end in bursts(texts):
                rendered += len(text_frames(texts[start:end]))
            if (seen + len(batch.records)) // 1000 > seen // 1000:
                await instance.confirm(durable=False)
        seen += len(batch.records)
    await instance.confirm()
    return rendered


def _reader_cpu(log: object) -> float:
    """CPU seconds of the Kafka reader process so far (0: there is none)."""
    pid = log.reader_pid if isinstance(log, KafkaLog) else None
    if pid is None:
        return 0.0
    stat = Path(f"/proc/{pid}/stat").read_text()
    # utime and stime: fields 14 and 15, counted after the parenthesised name.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rounds(log: object) -> int:
    return log.reader_rounds if isinstance(log, KafkaLog) else 0


async def _run(
    count: int, path: str, profile: str | None, data_dir: str, phase: str, bootstrap: str | None
) -> dict[str, float]:
    sections: dict[str, dict[str, object]] = {"auth": {"enabled": False}}
    if bootstrap is not None:
        sections["storage"] = {"data_dir": data_dir, "backend": "kafka"}
        sections["kafka"] = {
            "bootstrap_servers": bootstrap,
            "topic_prefix": f"bench{uuid.uuid4().hex[:8]}.",
        }
    settings = make_settings(Path(data_dir), **sections)
    log = open_log(settings)
    async with running(log):
        gateway = Gateway(settings, log)
        await gateway.start()
        principal = Principal.anonymous()
        if phase in ("both", "produce"):
            await _produce(gateway, principal, count)
        if phase == "produce":
            return {"events": count}
        tune_gc()  # as ``sluicegate serve`` does
        profiler = cProfile.Profile() if profile else None
        cpu, wall, loop_cpu = time.process_time(), time.perf_counter(), time.thread_time()
        reader_cpu, rounds = _reader_cpu(log), _rounds(log)
        if profiler is not None:
            profiler.enable()
        rendered = await _consume(gateway, principal, count, path)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)  # type: ignore[arg-type]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        loop_cpu = time.thread_time() - loop_cpu
        reader_cpu = _reader_cpu(log) - reader_cpu
        rounds = _rounds(log) - rounds
    measured: dict[str, float] = {
        "events": count,
        "cpu_us_per_event": round(cpu / count * 1e6, 3),
        "events_per_cpu_second": round(count / cpu),
        "loop_cpu_us_per_event": round(loop_cpu / count * 1e6, 3),
        "wall_events_per_second": round(count / wall),
        "bytes_rendered": rendered,
    }
    if bootstrap is not None:
        measured["reader_cpu_us_per_event"] = round(reader_cpu / count * 1e6, 3)
        measured["broker_rounds_per_1000_events"] = round(rounds / count * 1000, 2)
    return measured


def measure(
    count: int,
    path: str = "longpoll",
    profile: str | None = None,
    data_dir: str | None = None,
    phase: str = "both",
    bootstrap: str | None = None,
) -> dict[str, float]:
    """CPU per event of reading ``count`` events along ``path`` (see the module docstring).

    ``phase``: ``produce`` only stores the events in ``data_dir``, ``consume`` only reads
    them from there (a new group each time), so that a run under callgrind counts the
    consume side alone (SQLite only: a Kafka run's topics are new each time).
    ``bootstrap``: a Kafka cluster to store the events in instead of SQLite."""
    if data_dir is not None:
        return asyncio.run(_run(count, path, profile, data_dir, phase, bootstrap))
    with tempfile.TemporaryDirectory() as temporary:
        return asyncio.run(_run(count, path, profile, temporary, phase, bootstrap))


#: callgrind's total: it prints it twice ("Collected :" and "I refs:"), count it once.
_COLLECTED = re.compile(rb"Collected : ([\d,]+)")


def _instructions(count: int, path: str, data_dir: str) -> int:
    """Instructions callgrind counts for a process that consumes ``count`` events."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={scratch}/callgrind.out",
            "--dump-instr=no",
            "--collect-jumps=no",
            sys.executable,
            "-m",
            "bench.consume_cpu",
            f"--events={count}",
            f"--path={path}",
            f"--data-dir={data_dir}",
            "--phase=consume",
        ]
        root = Path(__file__).resolve().parent.parent
        done = subprocess.run(command, cwd=root, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"the consumer failed:\n{done.stderr.decode()[-2000:]}")
        return sum(int(found.replace(b",", b"")) for found in _COLLECTED.findall(done.stderr))


def instructions_per_event(short: int, long: int, path: str) -> int:
    """Instructions one consumed event costs on ``path``: a run of ``long`` events less
    one of ``short`` (start-up, shut-down and the group's first steps cancel out), both
    reading the same stored events; the reader threads count, the commit process not."""
    with tempfile.TemporaryDirectory() as scratch:
        # A copy each: one server at a time may hold a data directory.
        first, second = f"{scratch}/short", f"{scratch}/long"
        measure(long, path, data_dir=first, phase="produce")
        shutil.copytree(first, second)
        with ThreadPoolExecutor(max_workers=2) as pool:
            few, many = pool.map(
                lambda run: _instructions(run[0], path, run[1]), ((short, first), (long, second))
            )
    return round((many - few) / (long - short))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--path", choices=("longpoll", "stream"), default="longpoll")
    parser.add_argument("--profile", help="write a cProfile of the consume phase here")
    parser.add_argument("--data-dir", help="keep the log here (default: a temporary one)")
    parser.add_argument("--phase", choices=("both", "produce", "consume"), default="both")
    parser.add_argument("--backend", choices=("sqlite", "kafka"), default="sqlite")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("SLUICEGATE_TEST_KAFKA_BOOTSTRAP"),
        help="the Kafka cluster of --backend kafka",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per event under callgrind (events/5 against events)",
    )
    args = parser.parse_args()
    bootstrap = None
    if args.backend == "kafka":
        if not args.bootstrap:
            parser.error("--backend kafka needs --bootstrap or $SLUICEGATE_TEST_KAFKA_BOOTSTRAP")
        if args.phase != "both" or args.instructions:
            parser.error("--backend kafka measures produce and consume in one run (--phase both)")
        bootstrap = args.bootstrap
    if args.instructions:
        per_event = instructions_per_event(args.events // 5, args.events, args.path)
        print({"path": args.path, "instructions_per_event": per_event})
        return
    print(measure(args.events, args.path, args.profile, args.data_dir, args.phase, bootstrap))


if __name__ == "__main__":
    main()
