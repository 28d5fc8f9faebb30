"""The soak: one real server under a steady mixed load for an hour, watched for leaks.

    python -m bench.soak [--minutes 60] [--rate 200] [--topics 10000]

Starts ``sluicegate serve`` on 127.0.0.1 with a fresh data directory and offers it a
steady, moderate load for ``--minutes`` (not the most it can take: the load generator
shares this machine's two cores with the server, and a soak is about drift, not rate):

- records v2 produce of text and Avro records to a few steady topics, ``--rate``
  requests/s in all with the admin reads below;
- admin reads: describe a topic, read its latest records, and the whole topic list now
  and then;
- ``--topics`` distinct new topic names, each auto-created by its first produce, spread
  evenly over the run;
- clients that connect and drop without finishing their request (headers cut off,
  half a body, a reset), and once, halfway, ``--idle-clients`` connections opened and
  left idle for two sampling periods;
- the consumers of ``bench.soak_consumers`` (unless ``--no-consumers``): topics v1
  cursor walks of two steady topics, a CloudEvents producer, a long-polling and a
  WebSocket consumer group that must each receive every event, instances created
  and deleted or left to expire, and two bursts of ``--idle-instances`` idle instances.

Before the baseline a warm-up (``--no-warm-up`` skips it) fills the server's bounded
caches (``WARM_UP_BYTES`` of records, ``WARM_UP_TOPICS`` topics), so that the run judges
drift, not a cache filling up. Every ``--sample-every`` seconds it records the
server's RSS (with its commit process), open descriptors, event-loop lag (the
``sluicegate_event_loop_lag_seconds`` gauge),
the number of ``/metrics`` series, the live CloudEvents consumer instances, the sizes
of the data directory and of the WAL, and the requests answered.
``bench/results/soak.json`` is rewritten after every sample, so a run stopped early
still leaves its figures; at the end the goals are judged (``bench.soak_report``) and
plotted to ``bench/results/soak.png``. The exit status is 0
only if every goal is met. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import httpx

from bench.compare import server_env, source_trees
from bench.soak_consumers import KEEPALIVE_EXPIRY, ConsumerConfig, ConsumerLoad
from bench.soak_report import judge, plot
from bench.soak_tally import Tally
from sluicegate.storage.sqlite.directory import DATABASE_FILE
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["SoakConfig", "soak"]

RESULTS = Path(__file__).parent / "results"
#: Topics the steady load produces to and reads from.
STEADY_TOPICS = 8
#: Requests in flight at most; past it a due request is skipped (and counted), so a
#: stalled server meets a bounded client, not a queue that grows for the whole run.
MAX_IN_FLIGHT = 64
#: The share of the steady load each kind of request takes.
MIX = {"text": 60, "avro": 20, "describe": 10, "read": 10}
#: The steady topics the topics v1 cursor walks follow: one of text, one of Avro.
WALKED_TOPICS = ("soak-0", "soak-avro-0")
#: Seconds between two listings of every topic (1.9 MB with 10,000 topics).
LIST_EVERY = 60.0
AVRO_SCHEMA = {
    "namespace": "com.example.soak",
    "type": "record",
    "name": "Reading",
    "fields": [{"name": "payload", "type": "string"}, {"name": "count", "type": "long"}],
}
#: The Confluent wire format's magic byte and schema id, before the Avro body.
_CONFLUENT_HEADER = 5
#: The warm-up, before the baseline, fills the server's bounded caches, so that the run
#: judges drift and not a cache filling up: records enough for the SQLite backend's
#: recent chunks (16 MiB by default, counted in memory), in large values so that it
#: takes seconds, and more topic names than the core topic cache and the app's dispatch
#: cache hold (1,024 each).
WARM_UP_BYTES = 20 * 1024 * 1024
WARM_UP_VALUE_BYTES = 8192
WARM_UP_TOPICS = 1_100
WARM_UP_WORKERS = 16


@dataclass
class SoakConfig:
    minutes: float = 60.0
    rate: float = 100.0
    topics: int = 10_000
    value_bytes: int = 512
    sample_every: float = 10.0
    dropped_per_second: float = 2.0
    idle_clients: int = 200
    seed: int = 20
    #: Fill the bounded caches before the baseline (see ``WARM_UP_BYTES``).
    warm_up: bool = True
    #: The consumers of ``bench.soak_consumers``; None: the records v2 load alone.
    consumers: ConsumerConfig | None = field(default_factory=ConsumerConfig)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with suppress(FileNotFoundError):
                found += map(int, Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _dir_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


#: The gauge of live CloudEvents consumer instances.
_INSTANCES = "sluicegate_cloudevents_consumers_instances "


#: A label value naming a topic the soak writes through records v2 (``soak-3``,
#: ``soak-avro-0``, ``soak-new-00042``, ``soak-warm-up``, ``soak-warm-0007``). Such a name in
#: a label is a series per topic: unbounded. Consumer groups are labelled on purpose,
#: capped by ``cloudevents.metrics_max_groups`` with an ``other`` bucket (their values
#: start ``ce/``), and their lag is per CloudEvents topic, one per routed event type
#: (``ce.<type>``): neither is a records topic, and the series count bounds both.
_SOAK_TOPIC_LABEL = re.compile(r'="soak-(?:\d+|avro-\d+|new-\d+|warm-up|warm-\d+)"')


def _metrics(text: str) -> tuple[int, float, int | None, bool]:
    """Series in a /metrics text, its loop-lag gauge, the live consumer instances, and
    whether a name of a topic the soak writes leaked into a label."""
    series, lag, instances = 0, 0.0, None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series += 1
        if line.startswith("sluicegate_event_loop_lag_seconds "):
            lag = float(line.split()[1])
        elif line.startswith(_INSTANCES):
            instances = int(float(line.split()[1]))
    return series, lag, instances, _SOAK_TOPIC_LABEL.search(text) is not None


class Soak:
    """One run: the load, the dropped and idle clients, the sampler."""

    def __init__(self, config: SoakConfig, url: str, pid: int, data_dir: Path) -> None:
        self.config = config
        self.url = url
        self.pid = pid
        self.data_dir = data_dir
        self.tally = Tally()
        self.samples: list[dict[str, Any]] = []
        self.fds_baseline = 0
        self.fds_after = 0
        self.consumers: ConsumerLoad | None = None
        self._random = random.Random(config.seed)
        self._in_flight = 0
        #: The load generator's own loop lag, worst since the last sample: a stall of the
        #: soak's process looks like a server that stopped answering otherwise.
        self._client_lag = 0.0
        #: New topic names due and not yet started, and names started so far.
        self._topics_due = 0
        self._topics_started = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._value = "v" * config.value_bytes
        self._text_header = base64.b64encode(b"soak").decode()
        writer = io.BytesIO()
        fastavro.schemaless_writer(
            writer, fastavro.parse_schema(AVRO_SCHEMA), {"payload": self._value, "count": 7}
        )
        self._avro_bytes = _CONFLUENT_HEADER + len(writer.getvalue())
        self._avro_schema = json.dumps(AVRO_SCHEMA)

    # -- requests --------------------------------------------------------------------

    def _text(self, key: str, value: str | None = None) -> dict[str, Any]:
        return {
            "headers": [{"name": "source", "value": self._text_header}],
            "key": {"type": "text", "data": key},
            "value": {"type": "text", "data": self._value if value is None else value},
        }

    def _text_size(self, key: str, value: str | None = None) -> int:
        value_size = len(self._value if value is None else value)
        return len(key) + value_size + len("source") + len(b"soak")

    async def _produce(
        self,
        client: httpx.AsyncClient,
        topic: str,
        key: str,
        avro: bool = False,
        value: str | None = None,
    ) -> None:
        if avro:
            body: dict[str, Any] = {
                "key": {"type": "text", "data": key},
                "value": {
                    "type": "avro",
                    "schema": self._avro_schema,
                    "schema_name_strategy": "topic",
                    "data": {"payload": self._value, "count": 7},
                },
            }
            size = len(key) + self._avro_bytes
            url = f"/v2/topics/{topic}/records?serializer=confluent"
        else:
            body, size = self._text(key, value), self._text_size(key, value)
            url = f"/v2/topics/{topic}/records"
        response = await client.post(url, json=body)
        if response.status_code != 200:
            self.tally.error(f"POST {url}: {response.status_code} {response.text[:200]}")
            return
        self.tally.ok += 1
        self.tally.stored_bytes += size
        self.tally.acknowledged[topic] = self.tally.acknowledged.get(topic, 0) + 1
        self.tally.last_offsets[topic] = int(response.json()["offset"])

    async def _get(self, client: httpx.AsyncClient, url: str) -> None:
        response = await client.get(url)
        if response.status_code != 200:
            self.tally.error(f"GET {url}: {response.status_code} {response.text[:200]}")
            return
        self.tally.ok += 1

    def _steady_request(self, client: httpx.AsyncClient, n: int) -> Awaitable[None]:
        kind = self._random.choices(list(MIX), weights=list(MIX.values()))[0]
        topic = f"soak-{n % STEADY_TOPICS}"
        if kind == "text":
            return self._produce(client, topic, f"key-{n % 1000}")
        if kind == "avro":
            return self._produce(client, f"soak-avro-{n % 2}", f"key-{n % 1000}", avro=True)
        known = self.tally.last_offsets.get(topic)
        if kind == "read" and known is not None:
            offset = max(0, known - 5)
            return self._get(client, f"/admin/v1/topics/{topic}/records?offset={offset}")
        return self._get(client, f"/admin/v1/topics/{topic}" if known is not None else "/healthz")

    def _launch(self, request: Callable[[], Awaitable[None]]) -> bool:
        """Start ``request`` unless ``MAX_IN_FLIGHT`` are running; whether it started."""
        if self._in_flight >= MAX_IN_FLIGHT:
            return False

        async def tracked() -> None:
            self._in_flight += 1
            try:
                await request()
            except httpx.HTTPError as exc:
                self.tally.error(f"{type(exc).__name__}: {exc}")
            finally:
                self._in_flight -= 1

        task = asyncio.ensure_future(tracked())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _create_due_topics(self, client: httpx.AsyncClient) -> None:
        """Start the first produce to each new topic name that is due, while slots last."""
        while self._topics_due:
            name = f"soak-new-{self._topics_started:05d}"

            async def create(name: str = name) -> None:
                await self._produce(client, name, "first")
                self.tally.topics_created += 1

            if not self._launch(create):
                return
            self._topics_due -= 1
            self._topics_started += 1

    async def _paced(self, rate: float, seconds: float, fire: Callable[[int], None]) -> None:
        """Call ``fire(n)`` ``rate`` times a second, evenly, for ``seconds``."""
        loop = asyncio.get_running_loop()
        start, fired = loop.time(), 0
        total = round(seconds * rate)
        while (elapsed := loop.time() - start) < seconds:
            for _ in range(min(int(elapsed * rate), total) - fired):
                fire(fired)
                fired += 1
            await asyncio.sleep(0.01)
        for _ in range(total - fired):  # the last one falls due as time runs out
            fire(fired)
            fired += 1

    # -- clients that leave ----------------------------------------------------------

    async def _dropped_client(self, n: int) -> None:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        body = json.dumps(self._text(f"dropped-{n}")).encode()
        request = (
            f"POST /v2/topics/soak-0/records HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        # Cut inside the headers or inside the body; never the whole request.
        cut = self._random.randrange(1, len(request) - 1)
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            self.tally.error(f"dropped client could not connect: {exc}")
            return
        writer.write(request[:cut])
        await writer.drain()
        await asyncio.sleep(self._random.uniform(0, 0.5))
        if n % 3 == 0:
            writer.transport.abort()  # a reset, as a crashed client's kernel sends
        else:
            writer.close()
        with suppress(OSError):
            await writer.wait_closed()
        self.tally.dropped_clients += 1

    async def _idle_clients(self, delay: float, hold: float) -> None:
        await asyncio.sleep(delay)
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        writers = []
        for _ in range(self.config.idle_clients):
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError as exc:
                self.tally.error(f"idle client could not connect: {exc}")
                break
            writers.append(writer)
        await asyncio.sleep(hold)
        for writer in writers:
            writer.close()
        for writer in writers:
            with suppress(OSError):
                await writer.wait_closed()

    # -- sampling --------------------------------------------------------------------

    async def _warm_up(self, client: httpx.AsyncClient) -> None:
        """Fill the server's bounded caches (``WARM_UP_BYTES``, ``WARM_UP_TOPICS``)."""
        value = "w" * WARM_UP_VALUE_BYTES
        records = -(-WARM_UP_BYTES // WARM_UP_VALUE_BYTES)
        jobs: list[Callable[[], Awaitable[None]]] = [
            partial(self._produce, client, "soak-warm-up", f"w-{n}", value=value)
            for n in range(records)
        ]
        jobs += [
            partial(self._produce, client, f"soak-warm-{n:04d}", "first")
            for n in range(WARM_UP_TOPICS)
        ]
        pending = iter(jobs)

        async def worker() -> None:
            for job in pending:
                try:
                    await job()
                except httpx.HTTPError as exc:
                    self.tally.error(f"warm-up: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(worker() for _ in range(WARM_UP_WORKERS)))

    async def _sample(self, client: httpx.AsyncClient, started: float) -> dict[str, Any]:
        pids = [self.pid, *_children(self.pid)]
        series: int | None = None
        lag: float | None = None
        instances: int | None = None
        leaked = False
        try:
            response = await client.get("/metrics", timeout=self.config.sample_every)
            series, lag, instances, leaked = _metrics(response.text)
        except httpx.HTTPError as exc:
            # A server that cannot answer /metrics in a sampling period is a finding,
            # recorded as an error of a well-formed request, not the end of the run.
            self.tally.error(f"GET /metrics: {type(exc).__name__}: {exc}")
        tally = self.tally
        return {
            "t": round(time.monotonic() - started, 1),
            "rss_bytes": sum(_rss(pid) for pid in pids),
            "fds": _fds(self.pid),
            "loop_lag_s": lag,
            "client_lag_s": round(self._client_lag, 3),
            "metric_series": series,
            "topic_name_in_metrics": leaked,
            "consumer_instances": instances,
            "data_dir_bytes": _dir_bytes(self.data_dir),
            "wal_bytes": _file_bytes(self.data_dir / f"{DATABASE_FILE}-wal"),
            "stored_bytes": tally.stored_bytes,
            "ok": tally.ok,
            "errors": tally.errors,
            "skipped": tally.skipped,
            "dropped_clients": tally.dropped_clients,
            "topics_created": tally.topics_created,
            "events_produced": self.consumers.events_produced if self.consumers else 0,
            "events_received": self.consumers.events_received if self.consumers else 0,
        }

    async def _watch_own_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.1
            await asyncio.sleep(0.1)
            self._client_lag = max(self._client_lag, loop.time() - due)

    async def _sampler(
        self, client: httpx.AsyncClient, started: float, write: Callable[[], None]
    ) -> None:
        while True:
            self.samples.append(await self._sample(client, started))
            self._client_lag = 0.0
            write()
            await asyncio.sleep(self.config.sample_every)

    # -- the run ---------------------------------------------------------------------

    async def run(self, write: Callable[[], None]) -> None:
        config = self.config
        seconds = config.minutes * 60
        # As many kept alive as may be open: a pool that closes "surplus" idle
        # connections can close one it has just handed to a queued request, which then
        # goes round httpcore's ConnectionNotAvailable retry; on a starved machine the
        # load generator spun there for minutes without yielding (encode/httpcore#1110).
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT,
            max_keepalive_connections=MAX_IN_FLIGHT,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            # Every kind of request once, so lazily opened resources are in the baseline.
            await self._produce(client, "soak-0", "warm-up")
            await self._produce(client, "soak-avro-0", "warm-up", avro=True)
            await self._get(client, "/admin/v1/topics/soak-0")
            await self._get(client, "/admin/v1/topics/soak-0/records?offset=0")
            if config.warm_up:
                await self._warm_up(client)
        watching = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=watching) as watcher:
            # The watcher's own connection is open before the baseline and after the load.
            await self._get(watcher, "/healthz")
            await asyncio.sleep(1)
            self.fds_baseline = _fds(self.pid)
            started = time.monotonic()
            sampler = asyncio.ensure_future(self._sampler(watcher, started, write))
            own_lag = asyncio.ensure_future(self._watch_own_lag())
            consumers = self._consumer_load(watcher)
            async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:

                def steady(n: int) -> None:
                    self._create_due_topics(client)
                    if not self._launch(lambda: self._steady_request(client, n)):
                        self.tally.skipped += 1

                def new_topic(n: int) -> None:
                    # Never skipped: a name that finds no free slot waits for the next.
                    self._topics_due += 1
                    self._create_due_topics(client)

                def listing(n: int) -> None:
                    if not self._launch(lambda: self._get(client, "/admin/v1/topics")):
                        self.tally.skipped += 1

                def dropped(n: int) -> None:
                    if not self._launch(lambda: self._dropped_client(n)):
                        self.tally.skipped += 1

                await asyncio.gather(
                    self._paced(config.rate, seconds, steady),
                    self._paced(config.topics / seconds, seconds, new_topic),
                    self._paced(1 / LIST_EVERY, seconds, listing),
                    self._paced(config.dropped_per_second, seconds, dropped),
                    self._idle_clients(seconds / 2, 2 * config.sample_every),
                    self._consume(consumers, seconds),
                )
                # Names still due (a slow server) are created now, as slots free up.
                while self._tasks or self._topics_due:
                    self._create_due_topics(client)
                    await asyncio.sleep(0.01)
            # Every client has left: give the server a moment to close its side. The
            # watcher's connection, open at the baseline, is open again for the count.
            await asyncio.sleep(5)
            await self._get(watcher, "/healthz")
            self.fds_after = _fds(self.pid)
            sampler.cancel()
            own_lag.cancel()
            with suppress(asyncio.CancelledError):
                await sampler
            self.samples.append(await self._sample(watcher, started))

    def _acknowledged(self, topic: str) -> int:
        return self.tally.acknowledged.get(topic, 0)

    def _consumer_load(self, watcher: httpx.AsyncClient) -> ConsumerLoad | None:
        if self.config.consumers is None:
            return None

        async def probe() -> tuple[int, int | None]:
            """The server's RSS and live consumer instances, now."""
            response = await watcher.get("/metrics", timeout=self.config.sample_every)
            rss = sum(_rss(pid) for pid in [self.pid, *_children(self.pid)])
            return rss, _metrics(response.text)[2]

        self.consumers = ConsumerLoad(self.config.consumers, self.url, self.tally, probe)
        return self.consumers

    async def _consume(self, consumers: ConsumerLoad | None, seconds: float) -> None:
        if consumers is None:
            return
        walks = {topic: partial(self._acknowledged, topic) for topic in WALKED_TOPICS}
        await consumers.run(seconds, walks, lambda: not self._tasks and not self._topics_due)

    def report(self) -> dict[str, Any]:
        tally = asdict(self.tally)
        del tally["last_offsets"], tally["acknowledged"]
        report = {
            "config": asdict(self.config),
            "fds_baseline": self.fds_baseline,
            "fds_after": self.fds_after,
            "tally": tally,
            "samples": self.samples,
        }
        if self.consumers is not None:
            walked = {topic: self.tally.acknowledged.get(topic, 0) for topic in WALKED_TOPICS}
            report["consumers"] = {**self.consumers.report(), "acknowledged": walked}
        return report


def soak(config: SoakConfig, out: Path, rev: str | None = None) -> dict[str, Any]:
    """Run the soak; write ``out`` (JSON) as it goes and ``out`` with ``.png`` at the end.

    The server runs the commit ``rev`` (exported as ``bench.compare`` does), so that the
    work tree can change during an hour's run, or else the work tree itself. Its log goes
    to ``out`` with ``.server.log``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        source = source_trees(stack, [rev])[rev] if rev is not None else None
        data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-soak-"))
        log_file = out.with_suffix(".server.log")
        log_file.unlink(missing_ok=True)
        env = server_env(source) or {}
        if config.consumers is not None:
            # Idle instances expire within the run, so that their memory is seen to return.
            timeout = config.consumers.idle_timeout
            env["SLUICEGATE_CLOUDEVENTS__CONSUMER_IDLE_TIMEOUT"] = f"{timeout:g}"
            most = min(60, timeout / 2)
            env["SLUICEGATE_CLOUDEVENTS__MAX_POLL_TIMEOUT"] = f"{most:g}"
            env["SLUICEGATE_CLOUDEVENTS__POLL_TIMEOUT"] = f"{min(20, most):g}"
        server = stack.enter_context(serve_in_subprocess(data_dir, env=env, log_file=log_file))
        run = Soak(config, server.url, server.pid, Path(data_dir))

        def write(final: dict[str, Any] | None = None) -> None:
            out.write_text(json.dumps(final or run.report(), indent=1) + "\n")

        try:
            asyncio.run(run.run(write))
        finally:
            write()
    report = run.report()
    report["goals"] = judge(report)
    write(report)
    plot(report, out.with_suffix(".png"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SoakConfig()
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="requests/s, steady")
    parser.add_argument("--topics", type=int, default=defaults.topics, help="new topic names")
    parser.add_argument("--value-bytes", type=int, default=defaults.value_bytes)
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every)
    parser.add_argument("--idle-clients", type=int, default=defaults.idle_clients)
    consumer_defaults = ConsumerConfig()
    parser.add_argument(
        "--idle-instances",
        type=int,
        default=consumer_defaults.idle_instances,
        help="idle CloudEvents consumer instances in each of two bursts",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=consumer_defaults.idle_timeout,
        help="the server's cloudevents.consumer_idle_timeout for the run (seconds)",
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="take the baseline with the server's bounded caches still empty",
    )
    parser.add_argument(
        "--no-consumers",
        action="store_true",
        help="the records v2 load alone: no topics v1 walks, no CloudEvents",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--rev", help="serve this commit instead of the work tree")
    args = parser.parse_args()
    config = SoakConfig(
        minutes=args.minutes,
        rate=args.rate,
        topics=args.topics,
        value_bytes=args.value_bytes,
        sample_every=args.sample_every,
        idle_clients=args.idle_clients,
        warm_up=not args.no_warm_up,
        consumers=None
        if args.no_consumers
        else ConsumerConfig(idle_instances=args.idle_instances, idle_timeout=args.idle_timeout),
    )
    report = soak(config, args.out, args.rev)
    for name, goal in report["goals"].items():
        print(f"{'PASS' if goal['ok'] else 'FAIL'}  {name:14} {goal['detail']}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    sys.exit(0 if all(goal["ok"] for goal in report["goals"].values()) else 1)


if __name__ == "__main__":
    main()
