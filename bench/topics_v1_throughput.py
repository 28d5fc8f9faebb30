"""Topics v1 throughput: batch publish against a schema and one client's cursor walk.

    python -m bench.run --only topics-v1-throughput [--duration SECONDS]
    python -m bench.topics_v1_throughput [REV ...] [--duration SECONDS] [--walks N]

The two message-rate targets of issue 21, measured on their own (``bench.topics_v1``
measures them too, among its other targets):

- ``topics-v1-batch-publish-schema``: 64 connections POST 100 valid messages per request
  against a JSON Schema, durable; messages/s against the 200,000 target. The bare-ASGI
  baseline takes turns with it (``http-baseline-topics-v1-throughput``, requests/s), so the run's
  ``batch-request-cost`` (baseline requests/s ÷ batch requests/s) says what one batch of
  100 costs in baseline requests, a figure that moves less with the machine's load.
- ``topics-v1-consume-walk``: one client (keep-alive, a raw socket: ``_Connection``) walks
  a cursor over 100,000 messages in batches of 50, from the start to the end; messages/s
  against the 100,000 target. Each server is walked ``--walks`` times, the servers taking turns.

With ``REV``s, every commit is served beside the working tree (``bench.compare``'s
exports) and takes the same turns, so before and after are measured in one run.
Writes ``bench/results/topics-v1-throughput.json`` when run on its own.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from contextlib import ExitStack
from typing import Any

import httpx
import msgspec

from bench.compare import ROOT, WORKTREE, server_env, source_trees
from bench.http_produce import _entry, take_turns
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.wrk import combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["fill_walk_topic", "run", "walk"]

MESSAGE = {"Name": "Jane", "Surname": "Doe", "age": 42, "note": "x" * 60}
SCHEMA = {
    "type": "object",
    "properties": {
        "Name": {"type": "string", "minLength": 1},
        "Surname": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "note": {"type": "string", "maxLength": 200},
    },
    "required": ["Name", "Surname"],
}
BODY = json.dumps(MESSAGE)
BATCH = 100
BATCH_BODY = json.dumps({"payloads": [MESSAGE] * BATCH})
WALK_MESSAGES = 100_000
WALK_BATCH = 50
BASELINE = "http-baseline-topics-v1-throughput"


def create_topic(url: str, name: str, schema: dict[str, Any] | None = None) -> int:
    """A topic (and its value schema, if given) through the admin and registry APIs."""
    created = httpx.post(f"{url}/admin/v1/topics", json={"name": name}, timeout=30)
    created.raise_for_status()
    if schema is not None:
        registered = httpx.post(
            f"{url}/subjects/{name}-value/versions",
            json={"schema": json.dumps(schema), "schemaType": "JSON"},
            timeout=30,
        )
        registered.raise_for_status()
    return int(created.json()["id"])


def fill_walk_topic(url: str, messages: int = WALK_MESSAGES) -> int:
    """A topic holding ``messages`` messages, published in batches of 100; its id."""
    topic = create_topic(url, "bench-walk")
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(messages // BATCH):
            response = client.post(f"/api/v1/batch/topics/{topic}/publish", content=BATCH_BODY)
            response.raise_for_status()
    return topic


class _Delivered(msgspec.Struct):
    message_id: str


class _Consumed(msgspec.Struct):
    messages: list[_Delivered]


_decode_consumed = msgspec.json.Decoder(_Consumed).decode


class _Connection:
    """A keep-alive HTTP/1.1 client over one socket: as little client CPU as Python allows.

    The walk is one round trip after another; the client shares the machine's two cores
    with the server, so a heavy client (``http.client`` parses every response's headers
    with the email package) slows the walk down by its own cost. This one sends a request
    in one ``sendall`` and reads an answer by its Content-Length (the gateway always sends
    one), nothing else.
    """

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``path``; the status and the body of the answer."""
        self._sock.sendall(
            b"POST %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (path, len(body), body)
        )
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._receive()
        head = buffer[:end].lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            raise RuntimeError(f"consume walk: an answer without Content-Length: {head!r}")
        start += len(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else len(head)])
        end += 4
        while len(buffer) < end + length:
            buffer += self._receive()
        self._buffer = buffer[end + length :]
        return int(head[9:12]), buffer[end : end + length]

    def _receive(self) -> bytes:
        data = self._sock.recv(1 << 18)
        if not data:
            raise RuntimeError("consume walk: the server closed the connection")
        return data

    def close(self) -> None:
        self._sock.close()


def walk(url: str, topic: int, messages: int = WALK_MESSAGES) -> float:
    """Walk ``topic`` from its start over ``messages`` messages; messages/s."""
    connection = _Connection(url)
    path = b"/api/v1/topics/%d/consume" % topic
    body = b'{"batch_size": %d}' % WALK_BATCH
    seen = 0
    started = time.perf_counter()
    while seen < messages:
        status, answer = connection.post(path, body)
        found = _decode_consumed(answer).messages if status == 200 else None
        if not found:
            raise RuntimeError(f"consume walk: {status} after {seen} messages")
        seen += len(found)
        after = found[-1].message_id.encode()
        body = b'{"batch_size": %d, "after_message_id": "%s"}' % (WALK_BATCH, after)
    elapsed = time.perf_counter() - started
    connection.close()
    return seen / elapsed


def _measure(servers: dict[str, str], base_url: str, duration: float, walks: int) -> Any:
    """Batch publish turns (with the baseline), then ``walks`` rounds of walks per server."""
    targets = {BASELINE: (base_url, BATCH_BODY)}
    walk_topics = {}
    for name, url in servers.items():
        checked = create_topic(url, "bench-schema", SCHEMA)
        targets[name] = (f"{url}/api/v1/batch/topics/{checked}/publish", BATCH_BODY)
        walk_topics[name] = fill_walk_topic(url)
    runs = take_turns(targets, duration)
    rates = {name: combined(results) for name, results in runs.items()}
    names = list(servers)
    walked: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(walks):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            walked[name].append(walk(servers[name], walk_topics[name]))
    return rates, walked


def _results(rates: Any, walked: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    base_rps, base_p99 = rates[BASELINE]
    results = {BASELINE: _entry(base_rps, "requests/s", base_rps, p99_ms=base_p99)}
    for name, rounds in walked.items():
        suffix = "" if name == WORKTREE else f"@{name}"
        batch_rps, batch_p99 = rates[name]
        results[f"topics-v1-batch-publish-schema{suffix}"] = _entry(
            batch_rps * BATCH,
            "messages/s",
            200_000,
            p99_ms=batch_p99,
            durable=True,
            batch_request_cost=round(base_rps / batch_rps, 2),
        )
        results[f"topics-v1-consume-walk{suffix}"] = _entry(
            sum(rounds) / len(rounds),
            "messages/s",
            100_000,
            batch_size=WALK_BATCH,
            messages=WALK_MESSAGES,
            rounds=[round(rate) for rate in rounds],
        )
    return results


def run(duration: float = 10.0, revs: tuple[str, ...] = (), walks: int = 3) -> dict[str, Any]:
    """Both benchmarks on the working tree and on each of ``revs``, taking turns."""
    with ExitStack() as stack:
        base_url = stack.enter_context(baseline_server())
        servers = {}
        for name, source in source_trees(stack, list(revs)).items():
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-data-"))
            server = stack.enter_context(
                serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=server_env(source))
            )
            spread_helper_threads(server.pid)
            servers[name] = server.url
        rates, walked = _measure(servers, base_url, duration, walks)
    return _results(rates, walked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", help="commits to measure beside the working tree")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per server")
    parser.add_argument("--walks", type=int, default=3, help="cursor walks per server")
    args = parser.parse_args()
    results = run(args.duration, tuple(args.revs), args.walks)
    out = ROOT / "bench" / "results" / "topics-v1-throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, entry in results.items():
        print(f"{name:48} {entry['value']:>12,.0f} {entry['unit']:12} ratio {entry['ratio']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
