"""CloudEvents WebSocket consumer benchmarks. Run: ``python -m bench.run --only cloudevents-ws``.

- ``cloudevents-ws-backlog``: one consumer (HTTP/1.1, uvicorn) reads a backlog of
  ``BACKLOG`` events, confirming every 1,000; events/s against the 150,000 target. Two
  same-run baselines, each a bare ASGI WebSocket app on sluicegate's uvicorn
  configuration sending one pre-rendered event ``BACKLOG`` times to the same client:
  ``cloudevents-ws-bare`` with one ``websocket.send`` per event (the ceiling of any app
  that sends one ASGI message per event: one frame and one ``transport.write`` each), and
  ``cloudevents-ws-bare-bursts`` in bursts of 100 through the ``send_texts`` extension
  (``http/websocket_bursts.py``, one write per burst, as ``/ce/ws`` sends): the ceiling of
  the server stack and of this client, and the backlog figure's baseline.
- ``cloudevents-ws-backlog-kafka``: the backlog again on the Kafka backend, when
  ``SLUICEGATE_TEST_KAFKA_BOOTSTRAP`` names a broker (same baseline).
- ``cloudevents-ws-backlog-max-deliveries``: the same backlog read again by groups with
  ``max_deliveries=5`` (delivery counting and dead-lettering on) and by plain groups in
  turn, ``ROUNDS`` of each: the median rate against the median plain rate (target ratio
  ≥ 0.95). ``bench.delivery_counting`` measures the same in CPU time, without HTTP.
- ``cloudevents-ws-latency-p99``: events produced at 5,000/s (a batch of 50 every 10 ms,
  ``/ce/produce/events``) to a connected consumer: the time from sending the batch (its
  durable commit included) to the event's arrival, p99 (target ≤ 5 ms); beside it the
  server's own p99s from /metrics: the durable commit and the wake path (a stream's
  wake-up to its write), and the producer's answer time; and the floor every durable
  commit stands on, this disk's ``fdatasync`` of a commit-sized write in the data
  directory, measured just before at the same pace (``_disk_floor``).
- ``cloudevents-ws-idle-rss`` and ``-idle-loop-lag-p99``: ``IDLE`` open, idle WebSocket
  consumers on a server of their own (raw sockets, each in its own group, each sent the one
  event there is and then waiting on its type's 12 partitions; the benchmark raises its own
  file-descriptor limit, which the server inherits, and the server's caps through the
  environment): added resident memory of the server (target ≤ 300 MB), and ``/healthz``
  round trips every 10 ms while they wait, as the event loop's lag (p99 target ≤ 10 ms).

The client reads frames with a minimal parser of its own (server frames are unmasked,
events are counted, never decoded): a WebSocket library in Python would measure itself.
Each connection counts offsets from 1, so the n-th event's offset is n.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.cloudevents_consume import kafka_env
from bench.http_produce import _entry
from bench.probes import PROBE, loop_lags_ms, parked, read_answer
from bench.servers import SERVER_CPU, spread_helper_threads
from bench.topics_v1 import _p99, _rss_mb
from sluicegate.http.websocket import send_texts
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

BACKLOG = 200_000
#: Reads of the backlog on each side of a comparison (medians are compared).
ROUNDS = 3
CONFIRM_EVERY = 1000
RATE = 5000
RATE_BATCH = 50
RATE_SECONDS = 5.0
IDLE = 10_000
EVENT = {
    "specversion": "1.0",
    "source": "urn:bench",
    "type": "Bench.Happened",
    "time": "2026-01-01T00:00:00Z",
    "data": {"order": 12345, "note": "x" * 60},
}


# -- a minimal WebSocket client ----------------------------------------------------------


def _handshake(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: cloudevents.json\r\n\r\n"
    ).encode()


def _text_frame(text: str) -> bytes:
    """A masked client text frame (a zero mask: the payload is sent as it is)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def _connect(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    writer.write(_handshake(path, port))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    return reader, writer


class FrameCounter:
    """Splits the server's frames out of a byte stream; keeps the payloads it is asked to."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.count = 0

    def feed(self, data: bytes, keep: bool = False) -> list[bytes]:
        buffer = self.buffer
        buffer += data
        kept: list[bytes] = []
        at, size = 0, len(buffer)
        while size - at >= 2:
            length = buffer[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if size - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, at + 2)
                start = at + 4
            elif length == 127:
                if size - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, at + 2)
                start = at + 10
            end = start + length
            if end > size:
                break
            if buffer[at] & 0x0F == 1:  # text: an event
                self.count += 1
                if keep:
                    kept.append(bytes(buffer[start:end]))
            at = end
        del buffer[:at]
        return kept


async def _read_events(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, total: int
) -> float:
    """Read ``total`` events, confirming every ``CONFIRM_EVERY``; seconds it took."""
    frames = FrameCounter()
    confirmed = 0
    started = time.perf_counter()
    while frames.count < total:
        data = await reader.read(1 << 20)
        if not data:
            # Closed by the server: end with the reason instead of reading EOF forever.
            raise RuntimeError(f"the server closed after {frames.count} events: {frames.buffer!r}")
        frames.feed(data)
        if frames.count - confirmed >= CONFIRM_EVERY:
            confirmed = frames.count - frames.count % CONFIRM_EVERY
            writer.write(_text_frame(f"confirm:{confirmed}"))
    return time.perf_counter() - started


# -- the bare baseline -------------------------------------------------------------------


def _rendered_event() -> str:
    return msgspec.json.encode({**EVENT, "id": "bench-0", "offset": "1"}).decode()


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then send the rendered event ``BACKLOG`` times, one ``websocket.send``
    each: the ceiling of an app that sends one ASGI message per event."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept", "subprotocol": "cloudevents.json"})
    text = _rendered_event()
    for _ in range(BACKLOG):
        await send({"type": "websocket.send", "text": text})
    await _until_closed(receive)


async def _until_closed(receive: Any) -> None:
    # The client's confirmations are read and dropped until it leaves: an app that
    # returned at the first would close the socket under the client's next one, and the
    # reset would throw away the events it had not read yet.
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def bare_burst_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then send the rendered event ``BACKLOG`` times in bursts of 100 messages
    (``sluicegate.websocket.send_texts``, one write each): the ceiling of the server
    stack and of this client for an app that sends as ``/ce/ws`` does."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept", "subprotocol": "cloudevents.json"})
    burst = [_rendered_event().encode()] * 100
    for _ in range(BACKLOG // len(burst)):
        await send_texts(scope, send, burst)
    await _until_closed(receive)


def _serve_bare(port: int, app: Any = bare_app) -> None:
    import uvicorn

    from sluicegate.cli.event_loop import run_async
    from sluicegate.cli.serve import tune_gc
    from sluicegate.config import load_settings
    from sluicegate.http.servers.uvicorn import uvicorn_config

    config = uvicorn_config(app, load_settings(environ={}))
    config.host, config.port = "127.0.0.1", port
    tune_gc()
    run_async(uvicorn.Server(config).serve())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _bare_rate(burst: bool = False) -> float:
    port = _free_port()
    command = ["taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "bench.cloudevents_ws"]
    command += [str(port), *(["--burst"] if burst else [])]
    root = Path(__file__).parent.parent
    process = await asyncio.create_subprocess_exec(*command, cwd=root, stdin=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                reader, writer = await _connect(port, "/")
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the bare WebSocket server did not start")
        seconds = await _read_events(reader, writer, BACKLOG)
        writer.close()
        return BACKLOG / seconds
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


# -- sluicegate ------------------------------------------------------------------------


async def _produce_backlog(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        headers = {"content-type": "application/cloudevents-batch+json"}

        async def batch(start: int) -> None:
            events = [{**EVENT, "id": f"b{n}"} for n in range(start, start + 1000)]
            response = await client.post(
                "/ce/produce/events", content=msgspec.json.encode(events), headers=headers
            )
            response.raise_for_status()

        for start in range(0, BACKLOG, 8000):
            await asyncio.gather(*(batch(s) for s in range(start, start + 8000, 1000)))


async def _backlog(url: str, port: int) -> float:
    await _produce_backlog(url)
    return await _read_backlog(port, "group=backlog&test=false")


async def _read_backlog(port: int, query: str = "group=backlog&test=false") -> float:
    """The backlog read by a new group (``query``), confirming every ``CONFIRM_EVERY``."""
    reader, writer = await _connect(port, f"/ce/ws?{query}")
    seconds = await _read_events(reader, writer, BACKLOG)
    writer.close()
    return BACKLOG / seconds


async def _max_deliveries(port: int, plain: float) -> dict[str, dict[str, Any]]:
    """The cost of delivery counting: the same backlog read by groups with
    ``max_deliveries`` on and by plain groups in turn, ``ROUNDS`` each (with ``plain``,
    the first read, on the plain side): the medians, so that neither side gets the
    warmer machine and one noisy read moves nothing."""
    counted: list[float] = []
    plains = [plain]
    for turn in range(ROUNDS):
        query = f"group=backlog-dl-{turn}&test=false&max_deliveries=5"
        counted.append(await _read_backlog(port, query))
        plains.append(await _read_backlog(port, f"group=backlog-plain-{turn}&test=false"))
    rate, baseline = statistics.median(counted), statistics.median(plains)
    print(f"max_deliveries=5: {rate:,.0f} events/s, plain {baseline:,.0f}", flush=True)
    return {
        "cloudevents-ws-backlog-max-deliveries": _entry(
            rate,
            "events/s",
            baseline,
            target_ratio=0.95,
            max_deliveries=5,
            events=BACKLOG,
            rounds=ROUNDS,
        )
    }


def _histogram_p99(metrics: str, name: str) -> tuple[float, int]:
    """The upper bound (ms) of the bucket holding the 99th percentile of Prometheus
    histogram ``name`` in a /metrics text (its first series), and its count."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return 0.0, 0
    total = buckets[-1][1]
    bound = next(bound for bound, count in buckets if count >= 0.99 * total)
    return bound * 1000, int(total)


def _histogram_delta(before: str, after: str, name: str) -> str:
    """``after``'s lines of histogram ``name`` less ``before``'s (the same series)."""
    old = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in before.splitlines()
        if line.startswith(name)
    }
    lines = []
    for line in after.splitlines():
        if line.startswith(name):
            key, value = line.rsplit(" ", 1)
            lines.append(f"{key} {float(value) - old.get(key, 0.0)}")
    return "\n".join(lines)


def _mean_ms(before: str, after: str, name: str, series: str = "") -> float:
    """The mean (ms) of what Prometheus histogram ``name`` observed between two /metrics
    texts, in its series whose labels contain ``series`` (its first one by default)."""
    totals: dict[str, float] = {}
    for text, sign in ((after, 1.0), (before, -1.0)):
        for line in text.splitlines():
            for part in ("_sum", "_count"):
                if line.startswith(name + part) and series in line:
                    totals[part] = totals.get(part, 0.0) + sign * float(line.rsplit(" ", 1)[1])
                    break
    count = totals.get("_count", 0.0)
    return round(totals.get("_sum", 0.0) / count * 1000, 3) if count else 0.0


def _produce_request(port: int, n: int) -> bytes:
    """Batch ``n`` of the latency benchmark as a whole HTTP/1.1 request."""
    body = msgspec.json.encode([{**EVENT, "id": f"l{n}-{i}"} for i in range(RATE_BATCH)])
    head = (
        f"POST /ce/produce/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/cloudevents-batch+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> None:
    """Send ``request`` and read its answer, which must be a 2xx."""
    writer.write(request)
    status, body = await read_answer(reader)
    if not 200 <= status < 300:
        raise RuntimeError(f"produce refused: {status} {body[:200]!r}")


#: A 50-event group commit appends about eleven 4 KiB pages (and their frame headers) to
#: SQLite's WAL: the write ``_disk_floor`` makes durable, as often as the commits come.
_FLOOR_WRITE = 11 * (4096 + 24)


def _disk_floor(directory: str, count: int = 300) -> tuple[float, float, float]:
    """Median, p99 and maximum of ``fdatasync`` (ms) after appending ``_FLOOR_WRITE``
    bytes to a file in ``directory``, ``RATE / RATE_BATCH`` times a second: what no
    durable commit there can beat, whatever the gateway does."""
    path = os.path.join(directory, "disk-floor.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    page = b"\x5a" * _FLOOR_WRITE
    times: list[float] = []
    try:
        for _ in range(count):
            os.write(fd, page)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(RATE_BATCH / RATE)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times), _p99(times), max(times)


async def _latency(url: str, port: int, data_dir: str) -> dict[str, dict[str, Any]]:
    """Produce → WebSocket delivery at ``RATE`` events/s, end to end: from the moment the
    producer sends a batch (its durable commit included) to each event's arrival, p99.

    The producer's own answer is no reference point: the consumer often has the event
    before the producer has read its 202 (both wait for the same commit, and the
    consumer's write goes out first). Two server-side figures say where the time goes,
    read from /metrics before and after (bucket bounds, so each is an upper bound): the
    durable commit (``sluicegate_commit_duration_seconds``, commit process and fsync) and
    the wake path, from the stream's wake-up to its write
    (``sluicegate_consumer_stream_wake_to_write_seconds``).
    """
    floor_median, floor_p99, floor_max = await asyncio.to_thread(_disk_floor, data_dir)
    # The backlog's group, every event of which is confirmed: only new events arrive.
    reader, writer = await _connect(port, "/ce/ws?group=backlog&test=false")
    frames = FrameCounter()
    sent_at: dict[str, float] = {}
    end_to_end: list[float] = []
    answered: list[float] = []
    decode = msgspec.json.Decoder().decode
    batches = int(RATE_SECONDS * RATE / RATE_BATCH)
    # Every request laid out before the clock starts, sent over a kept-alive connection
    # written by hand: an HTTP client library's CPU, in this process's event loop, would
    # delay the reading of the events it is racing.
    requests = [_produce_request(port, n) for n in range(batches)]

    async def consume() -> None:
        received = 0
        while received < batches * RATE_BATCH:
            data = await reader.read(1 << 16)
            arrived = time.perf_counter()
            for payload in frames.feed(data, keep=True):
                batch_id = decode(payload)["id"].split("-")[0]
                if batch_id not in sent_at:
                    # A backlog event whose confirmation the server had not committed when
                    # this connection joined: delivered again, as at least once allows.
                    continue
                end_to_end.append((arrived - sent_at[batch_id]) * 1000)
                received += 1
            if frames.count % 500 < RATE_BATCH:
                writer.write(_text_frame(f"confirm:{frames.count}"))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = (await client.get("/metrics")).text
        producer = await asyncio.open_connection("127.0.0.1", port)
        consuming = asyncio.ensure_future(consume())
        started = time.perf_counter()
        for n, request in enumerate(requests):
            await asyncio.sleep(max(0.0, started + n * RATE_BATCH / RATE - time.perf_counter()))
            sent_at[f"l{n}"] = sent = time.perf_counter()
            await _answered(*producer, request)
            answered.append((time.perf_counter() - sent) * 1000)
        await asyncio.wait_for(consuming, 30)
        producer[1].close()
        after = (await client.get("/metrics")).text
    writer.close()
    commit = "sluicegate_commit_duration_seconds"
    wake = "sluicegate_consumer_stream_wake_to_write_seconds"
    commit_p99, commits = _histogram_p99(_histogram_delta(before, after, commit), commit)
    wake_p99, wakes = _histogram_p99(_histogram_delta(before, after, wake), wake)
    return {
        "cloudevents-ws-latency-p99": _entry(
            _p99(end_to_end),
            "ms",
            5,
            events_per_second=RATE,
            events=len(end_to_end),
            measured_from="the producer's send (durable commit included)",
            produce_answer_p99_ms=round(_p99(answered), 2),
            server_commit_p99_ms_at_most=commit_p99,
            commits=commits,
            server_wake_to_write_p99_ms_at_most=wake_p99,
            wakes=wakes,
            # Where the time goes on the server, on average: the produce request
            # (parse, checks, commit), the durable commit alone, the wake path.
            server_produce_request_mean_ms=_mean_ms(
                before, after, "sluicegate_http_request_duration_seconds", "/ce/produce/events"
            ),
            server_commit_mean_ms=_mean_ms(before, after, commit),
            server_wake_to_write_mean_ms=_mean_ms(before, after, wake),
            disk_fdatasync_median_ms=round(floor_median, 2),
            disk_fdatasync_p99_ms=round(floor_p99, 2),
            disk_fdatasync_max_ms=round(floor_max, 2),
        )
    }


async def _idle(url: str, port: int, pid: int) -> dict[str, dict[str, Any]]:
    """``IDLE`` consumers, each in a group of its own, each given the one event there is:
    then every one of them waits on the type's 12 partitions."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.post(
            "/ce/produce/event",
            content=msgspec.json.encode({**EVENT, "id": "idle-0"}),
            headers={"content-type": "application/cloudevents+json"},
        )
        response.raise_for_status()
        rss_before = _rss_mb(pid)
        connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for start in range(0, IDLE, 250):
            connections += await asyncio.gather(
                *(
                    _connect(port, f"/ce/ws?group=idle{n}&test=false")
                    for n in range(start, start + 250)
                )
            )
        # Every stream has sent its event and is parked on the log, its set-up done.
        await parked(client, IDLE, "WebSocket consumers", 180)
        rss_after = _rss_mb(pid)
        lags = await loop_lags_ms(url)
    for _, writer in connections:
        writer.close()
    return {
        "cloudevents-ws-idle-rss": _entry(
            rss_after - rss_before, "MB", 300, connections=IDLE, rss_before_mb=round(rss_before)
        ),
        "cloudevents-ws-idle-loop-lag-p99": _entry(
            _p99(lags), "ms", 10, connections=IDLE, probe=PROBE
        ),
    }


async def _streaming(url: str, data_dir: str) -> dict[str, dict[str, Any]]:
    port = int(url.rsplit(":", 1)[1])
    bare = await _bare_rate()
    bare_burst = await _bare_rate(burst=True)
    rate = await _backlog(url, port)
    print(
        f"backlog: {rate:,.0f} events/s, bare {bare:,.0f} events/s, "
        f"bare in bursts {bare_burst:,.0f} events/s",
        flush=True,
    )
    results = {
        "cloudevents-ws-backlog": _entry(
            rate,
            "events/s",
            bare_burst,
            target=150_000,
            bare_one_send_per_event=round(bare),
            confirm_every=CONFIRM_EVERY,
            events=BACKLOG,
        ),
        "cloudevents-ws-bare": _entry(bare, "events/s", bare, events=BACKLOG),
        "cloudevents-ws-bare-bursts": _entry(bare_burst, "events/s", bare, events=BACKLOG),
    }
    results.update(await _max_deliveries(port, rate))
    results.update(await _latency(url, port, data_dir))
    print(results, flush=True)
    return results


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every CloudEvents WebSocket benchmark (each is bounded by its count, not ``duration``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65_536)), hard))
    caps = {
        "SLUICEGATE_LIMITS__MAX_WEBSOCKETS": str(IDLE + 100),
        "SLUICEGATE_LIMITS__MAX_WEBSOCKETS_PER_CLIENT": str(IDLE + 100),
        "SLUICEGATE_CLOUDEVENTS__MAX_CONSUMER_INSTANCES_PER_CLIENT": str(IDLE + 100),
        # Raw idle sockets answer no pings: none is due while they are measured.
        "SLUICEGATE_CLOUDEVENTS__WEBSOCKET_PING_INTERVAL": "600",
    }
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=caps) as server,
    ):
        spread_helper_threads(server.pid)
        results.update(asyncio.run(_streaming(server.url, data_dir)))
    kafka = kafka_env()
    if kafka is not None:
        with (
            tempfile.TemporaryDirectory() as data_dir,
            serve_in_subprocess(data_dir, cpu=SERVER_CPU, env={**caps, **kafka}) as server,
        ):
            spread_helper_threads(server.pid)
            port = int(server.url.rsplit(":", 1)[1])
            rate = asyncio.run(_backlog(server.url, port))
            results["cloudevents-ws-backlog-kafka"] = _entry(
                rate,
                "events/s",
                results["cloudevents-ws-bare-bursts"]["value"],
                target=150_000,
                confirm_every=CONFIRM_EVERY,
                events=BACKLOG,
            )
    # The idle consumers on a server of their own: on the first one, each new group would
    # start with the whole backlog.
    with (
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=caps) as server,
    ):
        spread_helper_threads(server.pid)
        port = int(server.url.rsplit(":", 1)[1])
        results.update(asyncio.run(_idle(server.url, port, server.pid)))
    return results


if __name__ == "__main__":
    _serve_bare(int(sys.argv[1]), bare_burst_app if "--burst" in sys.argv[2:] else bare_app)
