"""The node's fixed set of Kafka clients: opened together, watched together, closed together.

Whatever a node serves, it holds these open (see ``log``): one admin client, the
idempotent producer, the transactional producer, the reader and the tail. This module
makes them, knows whether the log is running, closing or cut off from the cluster, and
answers the question every operation asks first: may I use them now?
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError

from sluicegate.config import KafkaSettings
from sluicegate.core.records import Record
from sluicegate.errors import (
    ConfigError,
    ShuttingDown,
    SluicegateError,
    StorageUnavailable,
    TopicExists,
)
from sluicegate.storage.kafka.admin import KafkaAdmin
from sluicegate.storage.kafka.clients import admin_config, consumer_config, producer_config
from sluicegate.storage.kafka.durability import durability_warning
from sluicegate.storage.kafka.errors import REFUSED_LOGIN
from sluicegate.storage.kafka.fetcher import Fetcher
from sluicegate.storage.kafka.producer import IdempotentProducer
from sluicegate.storage.kafka.reader_process import ReaderProcess
from sluicegate.storage.kafka.tail import Tail
from sluicegate.storage.kafka.transactions import TransactionalProducer, Visible
from sluicegate.storage.kafka.worker import Worker
from sluicegate.storage.outages import until_available

__all__ = ["PROBE_INTERVAL", "KafkaNode"]

logger = logging.getLogger(__name__)

_Key = tuple[str, int]
#: Errors that say why the cluster turns the node's connections away.
_HANDSHAKE = "the TLS handshake with Kafka fails"
_TURNED_AWAY = {
    **dict.fromkeys(REFUSED_LOGIN, "Kafka refuses the gateway's credentials"),
    KafkaError._SSL: _HANDSHAKE,
}


def _turned_away(error: KafkaError) -> str | None:
    """Why the cluster turns the gateway's connections away, if ``error`` says it does."""
    code = error.code()
    if code in _TURNED_AWAY:
        return _TURNED_AWAY[code]
    # TLS 1.3 checks a client's certificate once the client has finished its side of the
    # handshake: a broker refusing it (untrusted, none sent) sends an alert, which the
    # client reads as a transport error on its first request.
    if code == KafkaError._TRANSPORT and "SSL alert number" in error.str():
        return _HANDSHAKE
    return None


#: Seconds between probes of a cluster that was reported down.
PROBE_INTERVAL = 1.0
#: Seconds the node's own question may take to answer a client's "every broker down"
#: report before the node is marked down (``_confirm_down``).
_CONFIRM_SECONDS = 2.0
#: Seconds between passes that stop following partitions nobody waits on.
_TAIL_SWEEP_INTERVAL = 10.0
#: Milliseconds the broker may hold the reader's fetch at a partition's end (see
#: ``clients.consumer_config``): a read's next round waits for it.
_READER_FETCH_WAIT_MS = 2
#: Bytes one fetch brings of a partition to the reader. A read, or a refill of the
#: read-ahead, that ends at its count in the middle of what a fetch brought leaves the
#: rest, which ``consume`` has made into messages already and the reader drops (only what
#: follows a waiting read is kept, within the read-ahead's bounds): with librdkafka's 1
#: MiB a backlog's walk made 1.44-1.56 messages per record read, with 256 KiB 1.24-1.26,
#: in as many rounds (design notes, "Kafka consume CPU per event").
_READER_PARTITION_FETCH_BYTES = 256 * 1024
#: The tail's: it waits there for the records it follows, answered as they arrive.
_TAIL_FETCH_WAIT_MS = 100


class KafkaNode:
    """The clients of one gateway node on the cluster of ``settings``, and their state.

    ``node_id`` makes the transactional id (unique per node, stable across restarts, so a
    restarted node fences its previous incarnation's open transaction).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        node_id: str,
        append_timeout: float,
        max_pending_appends: int,
    ) -> None:
        for key, value in (
            ("storage.max_pending_appends", max_pending_appends),
            ("storage.append_timeout", append_timeout),
            ("kafka.request_timeout", settings.request_timeout),
        ):
            if not value > 0:
                raise ConfigError(key, f"must be > 0, got {value}")
        if not settings.bootstrap_servers:
            raise ConfigError("kafka.bootstrap_servers", "required for the kafka backend")
        self.settings = settings
        self.prefix = settings.topic_prefix
        self._name = f"{self.prefix}{node_id}"
        self._transactional_id = settings.transactional_id or f"sluicegate-{self._name}"
        self.append_timeout = append_timeout
        #: Seconds an admin request or a read may take (``kafka.request_timeout``).
        self.timeout = settings.request_timeout
        self.max_pending = max_pending_appends
        self._admin: KafkaAdmin | None = None
        self._producer: IdempotentProducer | None = None
        self._producer_config: dict[str, Any] = {}
        #: Producers replaced after a fatal error, while they close (a reference each),
        #: and the threads of every producer replaced: their end is no death.
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: set[Worker] = set()
        #: Fails when a client thread of the node dies (the log's ``run`` awaits it).
        self._died: asyncio.Future[None] | None = None
        self._transactions: TransactionalProducer | None = None
        self._fetcher: Fetcher | None = None
        self._tail: Tail | None = None
        self.running = False
        self.closing = False
        #: Set when no broker answers the node (a client reported every broker down, and
        #: the node's own question went unanswered); cleared by the next good answer.
        self.down = False
        #: A client's last "every broker down" report, while ``probe_forever`` has not
        #: asked the cluster about it yet; and what wakes it to ask.
        self._down_report: str | None = None
        self._reported = asyncio.Event()
        self._probing = False
        #: Why the cluster last turned the node's connections away (its SASL login
        #: refused, the TLS handshake failed), while it does; cleared by the next good
        #: answer.
        self.refused: str | None = None

    # -- the clients (made by ``open``) ----------------------------------------------

    @property
    def admin(self) -> KafkaAdmin:
        assert self._admin is not None  # used only after open()
        return self._admin

    @property
    def producer(self) -> IdempotentProducer:
        assert self._producer is not None
        return self._producer

    @property
    def transactions(self) -> TransactionalProducer:
        assert self._transactions is not None
        return self._transactions

    @property
    def fetcher(self) -> Fetcher:
        assert self._fetcher is not None
        return self._fetcher

    @property
    def tail(self) -> Tail:
        assert self._tail is not None
        return self._tail

    async def _reach(self, admin: KafkaAdmin, registry: str) -> None:
        """Return once a broker answers and the ``registry`` topic exists, asking again
        until then.

        A node started while its cluster is away (a broker restarting, the network not
        up yet) waits for it, its server answering 503 and ``/readyz`` not ready, instead
        of exiting and waiting for a supervisor to start it again. ``down`` says so
        meanwhile. The log's ``close`` ends the wait.
        """

        async def reach() -> None:
            await self._ping(admin)
            configs = {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}
            try:
                await admin.create_topic(registry, 1, configs)
            except TopicExists:
                return
            # A topic just created may be named by a broker's metadata before it has a
            # partition there; what follows (the durability check, the registry's tail)
            # asks for its partition.
            await admin.until_led(registry, 1)

        def away() -> None:
            self.down = True

        await until_available(
            reach, f"Kafka at {self.settings.bootstrap_servers} cannot be used", on_failure=away
        )

    async def _say_if_durability_is_weak(self, admin: KafkaAdmin) -> None:
        """Warn, once at start, when an acknowledged record may be on one broker only
        on a cluster that has more (``durability``)."""
        try:
            replication = await admin.replication()
        except SluicegateError as exc:  # a question of ours, not a reason not to serve
            logger.info("could not tell how the gateway's topics are replicated: %s", exc)
            return
        warning = durability_warning(replication)
        if warning is not None:
            logger.warning("%s", warning)

    async def _ping(self, admin: KafkaAdmin, *, timeout: float | None = None) -> None:
        """``admin.ping()``; its failure says so when the cluster turns us away.

        A refused login or a failed handshake is no answer to librdkafka, which tries
        again until the request times out; only the client's error callback (served by
        ``poll``) tells why.
        """
        try:
            await admin.ping(timeout=timeout)
        except StorageUnavailable as exc:
            admin.poll()
            if self.refused is None:
                raise
            raise StorageUnavailable(self.refused) from exc
        if self.down:
            # Before the node says it is ready again: consumers' offsets go through it.
            admin.renew_coordinated()
        self.down = False
        if self.refused is not None:
            logger.info("Kafka accepts the gateway's connections again")
            self.refused = None

    def outage(self) -> str:
        """What keeps the node from its cluster, as ``/readyz`` and the 503s say it."""
        return self.refused or "every Kafka broker is unreachable"

    async def open(
        self,
        registry: str,
        on_fetched: Callable[[Mapping[_Key, int]], None],
        visible: Visible,
    ) -> None:
        """Reach the cluster, make sure the ``registry`` topic exists, start every client.

        ``on_fetched`` hears the tail's new partition ends; ``visible`` is how the
        transactional producer waits for its commits to become readable.
        """
        loop = asyncio.get_running_loop()
        settings = self.settings
        client = f"sluicegate-{self._name}"
        self._admin = KafkaAdmin(
            admin_config(settings, f"{client}-admin"),
            timeout=self.timeout,
            replication_factor=settings.replication_factor,
            topic=registry,
            on_error=self.kafka_error,
        )
        await self._reach(self._admin, registry)
        await self._say_if_durability_is_weak(self._admin)
        self._died = loop.create_future()
        self._producer_config = producer_config(
            settings,
            f"{client}-producer",
            append_timeout=self.append_timeout,
            transactional_id=None,
        )
        self._producer = IdempotentProducer(
            self._producer_config, loop, functools.partial(self._producer_error, 0)
        )
        self._transactions = TransactionalProducer(
            producer_config(
                settings,
                f"{client}-transactions",
                append_timeout=self.append_timeout,
                transactional_id=self._transactional_id,
            ),
            append_timeout=self.append_timeout,
            request_timeout=self.timeout,
            on_error=self.kafka_error,
            visible=visible,
        )
        group = f"{self.prefix}sluicegate-fetch"
        self._fetcher = Fetcher(
            consumer_config(
                settings,
                f"{client}-fetcher",
                group,
                fetch_wait_ms=_READER_FETCH_WAIT_MS,
                partition_fetch_bytes=_READER_PARTITION_FETCH_BYTES,
            ),
            loop,
            timeout=self.timeout,
            on_error=self.kafka_error,
        )
        self._tail = Tail(
            consumer_config(settings, f"{client}-tail", group, fetch_wait_ms=_TAIL_FETCH_WAIT_MS),
            loop,
            on_fetched,
            self.kafka_error,
        )
        for threaded in (self._producer, self._tail):
            self._watch(threaded.worker)
            threaded.start()
        self._watch(self._fetcher.worker)
        await self._fetcher.start()
        await self._transactions.start()

    def worker_ends(self) -> list[asyncio.Future[None]]:
        """Futures that fail if a client thread or the reader process dies (``run``
        brings the gateway down)."""
        assert self._died is not None  # used only after open()
        return [self._died]

    def _watch(self, worker: Worker | ReaderProcess) -> None:
        """Tell ``worker_ends`` when ``worker`` ends, unless its client was retired."""

        def ended(done: asyncio.Future[None]) -> None:
            died = self._died
            retired = isinstance(worker, Worker) and worker in self._retired
            if retired or died is None or died.done():
                return
            error = done.exception()
            if error is None:
                died.set_result(None)
            else:
                died.set_exception(error)

        worker.ended.add_done_callback(ended)

    def _producer_error(self, generation: int, error: KafkaError) -> None:
        """The error callback (on the loop) of the idempotent producer ``generation``
        (the node's first is 0, each one replacing it the next number).

        A fatal error leaves that producer refusing every record for good (librdkafka
        cannot keep its guarantees: a sequence it cannot repair, say), so a new one takes
        over at once, with a new producer id; the old one is closed, and its records in
        flight are failed with their outcome unknown (408).
        """
        self.kafka_error(error)
        old = self._producer
        current = generation == len(self._retired)
        if not error.fatal() or not current or old is None or self.closing or not self.running:
            return
        logger.error("the idempotent producer failed fatally (%s); making a new one", error.str())
        self._producer = IdempotentProducer(
            self._producer_config,
            asyncio.get_running_loop(),
            functools.partial(self._producer_error, generation + 1),
        )
        self._watch(self._producer.worker)
        self._producer.start()
        self._retired.add(old.worker)
        closing = asyncio.create_task(old.close(self.timeout), name="kafka-producer-retired")
        self._retiring.add(closing)
        closing.add_done_callback(self._retiring.discard)

    async def release(self) -> None:
        """Flush what is in flight and close every client that was opened."""
        if self._retiring:
            await asyncio.wait(self._retiring)
        if self._producer is not None:
            await self._producer.close(self.timeout)
        if self._transactions is not None:
            await self._transactions.shutdown()
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._tail is not None:
            await self._tail.close()

    # -- state -----------------------------------------------------------------------

    def require_running(self) -> None:
        if not self.running:
            if self.closing:
                raise ShuttingDown("the log is closed")
            raise StorageUnavailable("the log is not running yet")

    def running_admin(self) -> KafkaAdmin:
        """The admin client, or why the log cannot be used now."""
        self.require_running()
        return self.admin

    def queued(self) -> int:
        """Records handed to Kafka and not acknowledged yet."""
        queued = 0
        if self._producer is not None:
            queued += self._producer.queued()
        if self._transactions is not None:
            queued += self._transactions.queued_records
        return queued

    def kafka_error(self, error: KafkaError) -> None:
        """A client's error callback (on the loop): librdkafka retries; we only watch."""
        code = error.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            if self._probing:
                self._down_report = error.str()
                self._reported.set()  # ``probe_forever`` asks the cluster (``_confirm_down``)
            else:  # still starting: nothing is served yet, and the start retries
                self.down = True
        elif (turned_away := _turned_away(error)) is not None:
            # Reported on every connection attempt; said once, until a broker answers.
            why = f"{turned_away}: {error.str()}"
            if self.refused is None:
                logger.error("%s (see kafka.client's sasl.* and ssl.* settings)", why)
            self.refused = why
        elif error.fatal():
            logger.error("Kafka client error: %s", error.str())

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless a broker answers now.

        During an outage the node knows of (``down``: the probe asks every second whether
        it is over) the answer is at once, where a question to the cluster would take the
        whole request timeout to fail: a load balancer's probe of ``/readyz`` gives up
        sooner than that, and counts a slow answer as no answer.
        """
        if self.down:
            raise StorageUnavailable(self.outage(), retry_after=PROBE_INTERVAL)
        await self._ping(self.running_admin())

    async def probe_forever(self) -> None:
        """Ask the cluster whether a client's "every broker down" report holds as soon as
        one comes; while the node is down, ask every second whether it is back."""
        admin = self.running_admin()
        self._probing = True
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self._reported.wait()
            admin.poll()  # its error callback and log lines wait for it
            report, self._down_report = self._down_report, None
            self._reported.clear()
            if report is not None:
                await self._confirm_down(admin, report)
                continue
            if not self.down:
                continue
            try:
                await self._ping(admin)
            except SluicegateError:
                continue
            logger.info("a Kafka broker answers again")

    async def _confirm_down(self, admin: KafkaAdmin, report: str) -> None:
        """Mark the node down after a client's "every broker down" ``report`` only if the
        node's own question goes unanswered for ``_CONFIRM_SECONDS`` as well.

        A report speaks of that client's connections only: librdkafka connects to the
        brokers it needs, so a client whose connections all went to a broker stopped
        (a rolling restart) reports every broker down while the others serve. Marked
        down at once, the node would refuse every request with 503 until the next probe.
        Meanwhile requests go on as usual; in a real outage they wait for the cluster
        until this says so (a few seconds), as they would without the report.
        """
        was_down = self.down
        try:
            await self._ping(admin, timeout=min(self.timeout, _CONFIRM_SECONDS))
        except SluicegateError:
            if not was_down:
                logger.warning("every Kafka broker is unreachable: %s", report)
            self.down = True
            return
        if was_down:
            logger.info("a Kafka broker answers again")
        else:
            logger.info("a Kafka client lost its brokers (%s); another broker answers", report)

    async def sweep_tail_forever(self) -> None:
        """Stop following partitions nobody waited on for a while."""
        while True:
            await asyncio.sleep(_TAIL_SWEEP_INTERVAL)
            self.tail.forget_idle()

    async def bounded(self, read: asyncio.Future[list[Record]]) -> list[Record]:
        """The fetcher's answer; it answers within the request timeout, unless it died."""
        try:
            async with asyncio.timeout(self.timeout + 5.0):
                return await read
        except TimeoutError:
            raise StorageUnavailable("the Kafka fetcher did not answer") from None
