"""The soak's consumers: topics v1 cursor walks, and CloudEvents produced and consumed.

Beside the records v2 load of ``bench.soak``, through the public HTTP API only:

- **topics v1 cursor walks**: long polls of ``/api/v1/topics/{id}/consume`` over one text
  and one Avro topic of the steady load, each going on from the last message id it got;
  at the end each walk must have seen every record the load had acknowledged there;
- **a CloudEvents producer**: batches to ``/ce/produce/events`` and single events in
  binary mode to ``/ce/produce/raw``, of two types, every event with an id of its own;
- group ``soak-poll``: one long-polling instance that confirms each batch with its next
  poll (``confirm=true``);
- group ``soak-ws``: WebSocket consumers (``/ce/ws``, subprotocol ``cloudevents.json``)
  that confirm as they go and reconnect now and then (each connection is an instance);
- **instance churn**: instances of group ``soak-churn`` created, polled once, then deleted
  or left to expire;
- **idle bursts**: twice, many idle instances (ten to a group, each polled once) left to
  expire; every one must be gone afterwards (404), and the memory they took must come
  back for the next burst.

At the end, once the producer has stopped, both groups must have received every event
whose produce was acknowledged (each group reads every event once at least; a repeat
after a reconnect is counted, not an error).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench.soak_tally import Tally

__all__ = ["KEEPALIVE_EXPIRY", "ConsumerConfig", "ConsumerLoad"]

CE_SOURCE = "/soak/producer"
CE_TYPES = ("com.example.soak.reading", "com.example.soak.alert")
BATCH_TYPE = "application/cloudevents-batch+json"
SUBPROTOCOL = Subprotocol("cloudevents.json")
#: Seconds a consumer's long poll waits; short enough that a stop is seen soon.
POLL_SECONDS = 5
#: A WebSocket consumer confirms after this many events, or when none came for a while.
WS_CONFIRM_EVERY = 100
WS_QUIET_SECONDS = 0.5
#: Requests that create and poll the instances of an idle burst at once.
BURST_WORKERS = 8
#: How long the end waits for the consumers to catch up, at most.
DRAIN_SECONDS = 120.0
#: Seconds the soak's clients keep an idle connection for the next request: less than
#: the server's ``server.keep_alive_timeout`` (5 s). At httpx's default, also 5 s, a
#: request could go out on a connection the server was closing and fail (ReadError).
KEEPALIVE_EXPIRY = 2.0


@dataclass
class ConsumerConfig:
    #: Seconds between two produce requests (a batch and a raw event, in turn).
    produce_every: float = 1.0
    batch_events: int = 10
    data_bytes: int = 256
    ws_consumers: int = 2
    #: A WebSocket consumer closes and connects again after this many seconds.
    ws_reconnect_every: float = 300.0
    churn_every: float = 10.0
    #: Idle instances per burst; bursts start at these fractions of the run.
    idle_instances: int = 1000
    idle_bursts_at: tuple[float, ...] = (0.2, 0.5)
    #: The server's ``cloudevents.consumer_idle_timeout``, set by the soak: longer than
    #: a burst takes to create on a busy machine, so that its instances live together.
    idle_timeout: float = 120.0


@dataclass
class IdleBurst:
    """One burst of idle instances: the server before, with them, and after expiry."""

    created: int = 0
    rss_before: int = 0
    rss_with: int = 0
    rss_after: int = 0
    instances_before: int = 0
    instances_with: int = 0
    instances_after: int = 0
    #: Instances that still answered after their idle timeout had passed.
    still_alive: int = 0
    expired_after_s: float = 0.0


@dataclass
class ConsumerTally:
    """What the consumers saw; the sets are kept out of the report."""

    ce_requests: int = 0
    poll_received: int = 0
    ws_received: int = 0
    ws_connections: int = 0
    churn_created: int = 0
    churn_deleted: int = 0
    churn_left: int = 0
    walks: dict[str, int] = field(default_factory=dict)
    bursts: list[IdleBurst] = field(default_factory=list)


class ConsumerLoad:
    """The consumers and the CloudEvents producer of one soak run."""

    def __init__(
        self,
        config: ConsumerConfig,
        url: str,
        tally: Tally,
        probe: Callable[[], Awaitable[tuple[int, int | None]]],
    ) -> None:
        """``probe()``: the server's RSS and its live consumer instances, now."""
        self.config = config
        self.url = url
        self.tally = tally
        self.seen = ConsumerTally()
        self._probe = probe
        self._stop = asyncio.Event()
        self._produced: set[str] = set()
        self._uncertain: set[str] = set()
        self._poll_ids: set[str] = set()
        self._ws_ids: set[str] = set()
        self._walked: dict[str, int] = {}
        self._drain_deadline = float("inf")
        self._load_done: Callable[[], bool] = lambda: True
        self._data = json.dumps({"payload": "d" * config.data_bytes}).encode()

    # -- requests --------------------------------------------------------------------

    def _ok(self, response: httpx.Response, expected: int, what: str) -> bool:
        if response.status_code == expected:
            self.tally.ok += 1
            return True
        self.tally.error(f"{what}: {response.status_code} {response.text[:200]}")
        return False

    async def _guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step``; a transport error is an error of a well-formed request."""
        try:
            await step()
        except (httpx.HTTPError, OSError, websockets.WebSocketException) as exc:
            self.tally.error(f"{what}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1)

    # -- the CloudEvents producer ----------------------------------------------------

    def _event(self, event_id: str, n: int) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": CE_SOURCE,
            "type": CE_TYPES[n % len(CE_TYPES)],
            "datacontenttype": "application/json",
            "data": {"payload": "d" * self.config.data_bytes, "n": n},
        }

    async def _produce_once(self, client: httpx.AsyncClient, n: int) -> None:
        if n % 2 == 0:
            ids = [f"b{n}-{i}" for i in range(self.config.batch_events)]
            body = json.dumps([self._event(i, n) for i in ids]).encode()
            request = client.post(
                "/ce/produce/events", content=body, headers={"content-type": BATCH_TYPE}
            )
            what = "POST /ce/produce/events"
        else:
            ids = [f"r{n}"]
            headers = {
                "ce-specversion": "1.0",
                "ce-id": ids[0],
                "ce-source": CE_SOURCE,
                "ce-type": CE_TYPES[n % len(CE_TYPES)],
                "content-type": "application/json",
            }
            request = client.post("/ce/produce/raw", content=self._data, headers=headers)
            what = "POST /ce/produce/raw"
        self.seen.ce_requests += 1
        try:
            response = await request
        except httpx.HTTPError:
            self._uncertain.update(ids)
            raise
        if self._ok(response, 202, what):
            self._produced.update(ids)
        else:
            self._uncertain.update(ids)

    async def _producer(self, client: httpx.AsyncClient) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            await self._guarded("CloudEvents produce", partial(self._produce_once, client, n))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.produce_every)

    # -- long polls ------------------------------------------------------------------

    async def _create(self, client: httpx.AsyncClient, query: str) -> str | None:
        """A new consumer instance; its URL."""
        response = await client.post(f"/ce/consumers?{query}")
        if not self._ok(response, 201, f"POST /ce/consumers?{query}"):
            return None
        return response.headers["location"]

    async def _poll(
        self, client: httpx.AsyncClient, instance: str, query: str
    ) -> list[dict[str, Any]] | None:
        """One poll of ``…/events``: its events, or None when the instance is gone."""
        response = await client.get(f"{instance}/events?{query}", timeout=POLL_SECONDS + 30)
        if response.status_code == 404:
            return None
        if response.status_code == 204:
            self.tally.ok += 1
            return []
        if not self._ok(response, 200, "GET …/events"):
            return []
        events: list[dict[str, Any]] = response.json()
        return events

    async def _poll_consumer(self, client: httpx.AsyncClient) -> None:
        instance: str | None = None

        async def step() -> None:
            nonlocal instance
            if instance is None:
                instance = await self._create(client, "group=soak-poll")
                if instance is None:
                    await asyncio.sleep(1)
                    return
            events = await self._poll(client, instance, f"timeout={POLL_SECONDS}&confirm=true")
            if events is None:
                self.tally.error("the long-polling instance of soak-poll expired while polled")
                instance = None
                return
            self.seen.poll_received += len(events)
            self._poll_ids.update(event["id"] for event in events)

        while not self._stop.is_set() or not self._caught_up(self._poll_ids):
            await self._guarded("soak-poll consumer", step)
            if self._stop.is_set() and self._drain_over():
                break
        if instance is not None:
            with suppress(httpx.HTTPError):
                response = await client.post(f"{instance}/confirm")
                self._ok(response, 204, "POST …/confirm")
                response = await client.delete(instance)
                self._ok(response, 204, "DELETE instance")

    # -- WebSocket consumers ---------------------------------------------------------

    async def _ws_connection(self) -> None:
        """One connection: receive and confirm until it is time to reconnect or stop."""
        loop = asyncio.get_running_loop()
        url = "ws" + self.url.removeprefix("http") + "/ce/ws?group=soak-ws"
        async with connect(url, subprotocols=[SUBPROTOCOL], max_size=None) as ws:
            self.seen.ws_connections += 1
            leave_at = loop.time() + self.config.ws_reconnect_every
            last = confirmed = 0
            while loop.time() < leave_at:
                if self._stop.is_set() and (self._caught_up(self._ws_ids) or self._drain_over()):
                    break
                try:
                    message = await asyncio.wait_for(ws.recv(), WS_QUIET_SECONDS)
                except TimeoutError:
                    message = None
                if message is not None:
                    event = json.loads(message)
                    self.seen.ws_received += 1
                    self._ws_ids.add(event["id"])
                    last = int(event["offset"])  # an extension: a string
                if last > confirmed and (message is None or last - confirmed >= WS_CONFIRM_EVERY):
                    await ws.send(f"confirm:{last}")
                    confirmed = last
            if last > confirmed:
                await ws.send(f"confirm:{last}")
                # A confirmation sent just before the close may not be applied (the
                # server answers a close at once): a moment lets it be committed.
                await asyncio.sleep(0.2)

    async def _ws_consumer(self) -> None:
        while not self._stop.is_set() or not (self._caught_up(self._ws_ids) or self._drain_over()):
            await self._guarded("soak-ws consumer", self._ws_connection)

    # -- topics v1 cursor walks ------------------------------------------------------

    async def _topic_id(self, client: httpx.AsyncClient, name: str) -> int:
        response = await client.get("/api/event_streams/topics", params={"name": name})
        self._ok(response, 200, "GET /api/event_streams/topics")
        [found] = [t["id"] for t in response.json()["data"] if t["name"] == name]
        return int(found)

    async def _walk(
        self, client: httpx.AsyncClient, name: str, acknowledged: Callable[[], int]
    ) -> None:
        """Walk ``name`` with topics v1 cursors until stopped and past every acknowledged
        record (``acknowledged()``: how many the load has had acknowledged there)."""
        topic_id = await self._topic_id(client, name)
        url = f"/api/v1/topics/{topic_id}/consume"
        after: str | None = None
        self._walked[name] = 0

        async def step() -> None:
            nonlocal after
            body: dict[str, Any] = {"batch_size": 50, "timeout_secs": POLL_SECONDS}
            if after is not None:
                body["after_message_id"] = after
            response = await client.post(url, json=body, timeout=POLL_SECONDS + 30)
            if self._ok(response, 200, f"POST {url}"):
                messages = response.json()["messages"]
                if messages:
                    after = messages[-1]["message_id"]
                    self._walked[name] += len(messages)

        # Past the end, produces still in flight are acknowledged later: go on until the
        # load has none left (``load_done``) and the walk has caught up with them.
        while (
            not (self._stop.is_set() and self._load_done()) or self._walked[name] < acknowledged()
        ):
            await self._guarded(f"topics v1 walk of {name}", step)
            if self._stop.is_set() and self._drain_over():
                break

    async def _warm_up(self, client: httpx.AsyncClient) -> None:
        instance = await self._create(client, "group=soak-warm-up&events=false")
        if instance is None:
            return
        await self._poll(client, instance, "timeout=0")
        self._ok(await client.post(f"{instance}/confirm"), 204, "POST …/confirm")
        self._ok(await client.delete(instance), 204, "DELETE instance")
        if await self._poll(client, instance, "timeout=0") is None:
            self.tally.ok += 1  # the 404 of an instance that is gone
        else:
            self.tally.error("a deleted instance still answered")

    # -- churn and idle bursts -------------------------------------------------------

    async def _churn(self, client: httpx.AsyncClient) -> None:
        n = 0

        async def step() -> None:
            instance = await self._create(client, "group=soak-churn")
            if instance is None:
                return
            self.seen.churn_created += 1
            await self._poll(client, instance, "timeout=1")
            if n % 2:
                self.seen.churn_left += 1  # the reaper's: it expires unconfirmed
                return
            response = await client.post(f"{instance}/confirm")
            self._ok(response, 204, "POST …/confirm")
            response = await client.delete(instance)
            if self._ok(response, 204, "DELETE instance"):
                self.seen.churn_deleted += 1

        while not self._stop.is_set():
            await self._guarded("soak-churn", step)
            n += 1
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.churn_every)

    async def _idle_burst(self, client: httpx.AsyncClient, number: int) -> IdleBurst:
        """Many idle instances, each polled once, then left to expire."""
        burst = IdleBurst()
        burst.rss_before, before = await self._probe()
        burst.instances_before = before or 0
        pending = iter(range(self.config.idle_instances))
        urls: list[str] = []

        async def worker() -> None:
            for i in pending:
                # Ten to a group; events=false: an idle consumer of its test events.
                query = f"group=soak-idle-{number}-{i // 10}&events=false"
                instance = await self._create(client, query)
                if instance is not None and await self._poll(client, instance, "timeout=0") == []:
                    urls.append(instance)

        await asyncio.gather(*(self._guarded("idle burst", worker) for _ in range(BURST_WORKERS)))
        burst.created = len(urls)
        last_used = time.monotonic()
        burst.rss_with, with_them = await self._probe()
        burst.instances_with = with_them or 0
        # The reaper looks at an instance once its timeout is due: allow it a few seconds.
        await asyncio.sleep(self.config.idle_timeout + 10)
        burst.expired_after_s = round(time.monotonic() - last_used, 1)
        unchecked = iter(urls)

        async def check() -> None:
            for instance in unchecked:
                response = await client.get(f"{instance}/events?timeout=0")
                if response.status_code == 404:
                    self.tally.ok += 1
                else:
                    burst.still_alive += 1
                    status = response.status_code
                    self.tally.error(f"idle instance alive after its timeout: {status}")

        await asyncio.gather(*(self._guarded("idle check", check) for _ in range(BURST_WORKERS)))
        burst.rss_after, after = await self._probe()
        burst.instances_after = after or 0
        return burst

    async def _idle_bursts(self, client: httpx.AsyncClient, seconds: float) -> None:
        started = time.monotonic()
        for number, at in enumerate(self.config.idle_bursts_at):
            delay = started + at * seconds - time.monotonic()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(delay, 0))
            if self._stop.is_set():
                return
            self.seen.bursts.append(await self._idle_burst(client, number))

    # -- the run ---------------------------------------------------------------------

    def _caught_up(self, ids: set[str]) -> bool:
        return self._produced <= ids

    def _drain_over(self) -> bool:
        return time.monotonic() > self._drain_deadline

    async def run(
        self,
        seconds: float,
        walks: Mapping[str, Callable[[], int]],
        load_done: Callable[[], bool],
    ) -> None:
        """Produce and consume for ``seconds``; then let every consumer catch up.

        ``walks``: topic name → how many records the load has had acknowledged there;
        ``load_done()``: whether the rest of the soak has no request in flight any more.
        """
        self._load_done = load_done
        limits = httpx.Limits(
            max_connections=32, max_keepalive_connections=32, keepalive_expiry=KEEPALIVE_EXPIRY
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            # Every consumer route and answer once (a deleted instance's 404 too), so that
            # their /metrics series exist from the start, as the records v2 warm-up does.
            await self._guarded("consumer warm-up", partial(self._warm_up, client))
            consumers = [
                asyncio.ensure_future(self._poll_consumer(client)),
                *(
                    asyncio.ensure_future(self._ws_consumer())
                    for _ in range(self.config.ws_consumers)
                ),
                *(asyncio.ensure_future(self._walk(client, n, a)) for n, a in walks.items()),
            ]
            producers = [
                asyncio.ensure_future(self._producer(client)),
                asyncio.ensure_future(self._churn(client)),
                asyncio.ensure_future(self._idle_bursts(client, seconds)),
            ]
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*producers)), seconds)
            self._stop.set()
            self._drain_deadline = time.monotonic() + DRAIN_SECONDS
            await asyncio.gather(*producers, *consumers)

    @property
    def events_produced(self) -> int:
        """Events whose produce was acknowledged so far."""
        return len(self._produced)

    @property
    def events_received(self) -> int:
        """Events the two groups received so far, repeats included."""
        return self.seen.poll_received + self.seen.ws_received

    def report(self) -> dict[str, Any]:
        seen = asdict(self.seen)
        unexpected = (self._poll_ids | self._ws_ids) - self._produced - self._uncertain
        seen.update(
            ce_produced=len(self._produced),
            ce_uncertain=len(self._uncertain),
            poll_unique=len(self._poll_ids & self._produced),
            ws_unique=len(self._ws_ids & self._produced),
            poll_missing=len(self._produced - self._poll_ids),
            ws_missing=len(self._produced - self._ws_ids),
            unexpected=len(unexpected),
            walks=dict(self._walked),
        )
        return seen
