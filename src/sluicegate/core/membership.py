"""Which gateway nodes are alive, learnt from heartbeat records in the log itself.

Each node appends a heartbeat record to the internal topic ``__sluicegate_nodes`` every
``cluster.heartbeat_interval`` seconds (key: its node id; value: its advertised URL, when
it started, its consumer instance counts) and every node follows that topic through the
``Log`` contract (``StateTopic``), so membership needs no connection between nodes and no
storage code of its own. A node is live while its last heartbeat is younger than
``cluster.heartbeat_timeout``; a node that stops cleanly writes a tombstone and is gone
at once.

A heartbeat's age is measured from the time the *sender* wrote in it, read against this
node's clock, so that a record replayed at start counts as old as it is. Nodes on one
cluster are expected to run NTP: a clock ahead by more than the timeout makes its node
look gone, and a negative age (a clock behind) counts as zero.

On the embedded log there is one node: nothing is written, and membership is this node.
The topic is compacted (one record per node is all a reader needs) and keeps its records
an hour at most, so the heartbeats of a node that never comes back disappear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from sluicegate.config import ClusterSettings
from sluicegate.core.state_topic import StateTopic
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec
from sluicegate.errors import ConfigError, SluicegateError, TopicExists
from sluicegate.storage.base import Log

__all__ = ["NODES_TOPIC", "Heartbeat", "Membership", "Node"]

logger = logging.getLogger("sluicegate.cluster")

NODES_TOPIC = f"{INTERNAL_PREFIX}_nodes"
#: Milliseconds a heartbeat record is kept at most (compaction keeps the last per node
#: sooner): an hour of a node that died without its tombstone, then it is forgotten.
_RETENTION_MS = 3_600_000
#: Segments roll every ten minutes, so that compaction and retention can act on them.
_SEGMENT_MS = "600000"
#: Seconds before a heartbeat that failed is tried again.
_RETRY_INTERVAL = 0.5


class Heartbeat(msgspec.Struct, frozen=True):
    """One node's heartbeat record (the value; the key is the node id)."""

    url: str
    #: Wall-clock seconds (Unix time) at which the node started, and at which it wrote this.
    started_at: float
    sent_at: float
    #: Its CloudEvents consumer instances (long polling and streaming), and the streams.
    instances: int = 0
    streams: int = 0


class Node(msgspec.Struct, frozen=True):
    """A node as this one knows it."""

    node_id: str
    url: str
    started_at: float
    #: Seconds since its last heartbeat was written (0 for this node).
    heartbeat_age: float
    live: bool
    instances: int
    streams: int
    this_node: bool


class Membership:
    """This node's heartbeats, and every node's as they arrive.

    ``counts`` gives this node's (instances, streams) for its heartbeats. ``shared`` says
    whether other nodes can exist (the log is a Kafka cluster); without it no record is
    written or read. ``url`` is the advertised URL; the server sets it once it has bound
    its listener (``advertise``) when the settings give none.
    """

    def __init__(
        self,
        log: Log,
        settings: ClusterSettings,
        *,
        shared: bool,
        counts: Callable[[], tuple[int, int]] = lambda: (0, 0),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = settings.node_id
        self.url = settings.advertised_url.rstrip("/")
        self.shared = shared
        self._interval = settings.heartbeat_interval
        self._timeout = settings.heartbeat_timeout
        self._counts = counts
        self._clock = clock
        self._monotonic = monotonic
        self._started_at = clock()
        #: node id -> (its last heartbeat, this node's monotonic time it was written at).
        self._seen: dict[str, tuple[Heartbeat, float]] = {}
        self._records = StateTopic(log, "nodes", Heartbeat, on_change=self._heard)
        self._log = log
        #: Whether this node announced itself (and so heartbeats, and leaves with a tombstone).
        self._announced = False
        #: The heartbeat (URL, time seen) a start waited on, holding this node's id.
        self._waited_for: tuple[str, float] | None = None
        #: Whether the heartbeats topic was read (``start`` of a node that announces itself).
        self._loaded = False
        #: This node's monotonic time when it sent its last heartbeat that was written.
        self._beat_written: float | None = None

    def advertise(self, url: str) -> None:
        """Set the advertised URL, unless the settings gave one."""
        if not self.url:
            self.url = url.rstrip("/")

    # -- what is known ---------------------------------------------------------------

    def _heard(self, node_id: str, heartbeat: Heartbeat | None) -> None:
        if heartbeat is None:
            self._seen.pop(node_id, None)
            return
        age = max(0.0, self._clock() - heartbeat.sent_at)
        self._seen[node_id] = (heartbeat, self._monotonic() - age)

    def live_url(self, node_id: str) -> str | None:
        """The URL of ``node_id`` if it is another node and live, else None."""
        seen = self._seen.get(node_id)
        if seen is None or node_id == self.node_id:
            return None
        heartbeat, written = seen
        if self._monotonic() - written >= self._timeout:
            return None
        return heartbeat.url

    async def catch_up(self) -> None:
        """Read every heartbeat written so far (``run`` follows them anyway); nothing
        before ``start`` read the topic, or when it never will (nothing to announce)."""
        if self._loaded:
            await self._records.catch_up()

    def live(self, node_id: str) -> bool:
        """Whether ``node_id`` is this node or another node whose heartbeat is fresh."""
        if node_id == self.node_id:
            return True
        seen = self._seen.get(node_id)
        return seen is not None and self._monotonic() - seen[1] < self._timeout

    async def silent(self, node_id: str) -> None:
        """Return once ``node_id`` is not live: its last heartbeat is older than the
        timeout, or it left. A heartbeat that arrives meanwhile puts it off."""
        while True:
            seen = self._seen.get(node_id)
            if seen is None:
                return
            left = seen[1] + self._timeout - self._monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    def seen_as_live(self, margin: float = 0.0) -> bool:
        """Whether the other nodes still see this one as live, ``margin`` seconds from now.

        They judge by this node's last heartbeat that was written: once it is older than
        the timeout they may take what this node holds (its group shards), so this node
        must stop acting on it first. Always true without a shared log.
        """
        if not self.shared or not self._announced:
            return True
        written = self._beat_written
        return written is not None and self._monotonic() + margin - written < self._timeout

    def nodes(self) -> list[Node]:
        """Every node known, this one first, then by id; gone ones with ``live`` false."""
        now = self._monotonic()
        instances, streams = self._counts()
        listed = [
            Node(
                node_id=self.node_id,
                url=self.url,
                started_at=self._started_at,
                heartbeat_age=0.0,
                live=True,
                instances=instances,
                streams=streams,
                this_node=True,
            )
        ]
        for node_id, (heartbeat, written) in sorted(self._seen.items()):
            if node_id == self.node_id:
                continue
            age = max(0.0, now - written)
            listed.append(
                Node(
                    node_id=node_id,
                    url=heartbeat.url,
                    started_at=heartbeat.started_at,
                    heartbeat_age=round(age, 3),
                    live=age < self._timeout,
                    instances=heartbeat.instances,
                    streams=heartbeat.streams,
                    this_node=False,
                )
            )
        return listed

    # -- this node's heartbeats ------------------------------------------------------

    async def start(self) -> None:
        """Read who is there; refuse to start under a node id that a live node holds;
        announce this node. The log must be running.

        A process with no URL to advertise serves nobody (the CLI's offline mode opens a
        gateway to run one command): it announces nothing, or other nodes would forward
        to it, and it cannot take a serving node's id from it.
        """
        if not self.shared or not self.url:
            return
        with contextlib.suppress(TopicExists):
            await self._log.create_topic(
                TopicSpec(
                    name=NODES_TOPIC,
                    partitions=1,
                    retention_ms=_RETENTION_MS,
                    config={"cleanup.policy": "compact,delete", "segment.ms": _SEGMENT_MS},
                )
            )
        await self._records.load()
        self._loaded = True
        await self._until_id_is_free()
        await self.beat()
        self._announced = True

    async def _until_id_is_free(self) -> None:
        """Return once no other live node holds this node's id; ``ConfigError`` if one
        keeps holding it.

        The same id at the same URL is this node restarted (after a crash, before its
        heartbeats timed out). At another URL it is either this node restarted somewhere
        else (a container gets a new address, a port chosen at start changes) whose last
        heartbeats have not timed out yet, or a second node under one id, whose
        transactional producers would fence each other and whose consumer URLs collide.
        Only time tells them apart: a dead predecessor writes nothing more, a live twin
        goes on beating. So a start waits until the last heartbeat seen has timed out,
        then looks again.
        """
        while True:
            other = self._seen.get(self.node_id)
            if other is None:
                return
            heartbeat, written = other
            left = written + self._timeout - self._monotonic()
            if left <= 0 or heartbeat.url == self.url:
                return
            if self._waited_for == (heartbeat.url, written):
                raise ConfigError(
                    "cluster.node_id",
                    f"{self.node_id!r} is the id of a live node at {heartbeat.url}; every node "
                    "needs an id of its own",
                )
            logger.warning(
                "node id %r was last announced from %s %.1f s ago; waiting %.1f s for it to "
                "time out before taking it",
                self.node_id,
                heartbeat.url,
                self._monotonic() - written,
                left,
            )
            self._waited_for = (heartbeat.url, written)
            await asyncio.sleep(left)
            await self._records.catch_up()
            newer = self._seen.get(self.node_id)
            if newer is None or newer[1] <= written or newer[0].url == self.url:
                return  # silent since: a predecessor, gone
            # It beat again while we waited: a live twin (refused on the next turn).
            self._waited_for = (newer[0].url, newer[1])

    async def beat(self) -> None:
        """Write one heartbeat."""
        instances, streams = self._counts()
        # Read before the write: the others count the heartbeat's age from its send time.
        sending = self._monotonic()
        await self._records.put(
            self.node_id,
            Heartbeat(
                url=self.url,
                started_at=self._started_at,
                sent_at=self._clock(),
                instances=instances,
                streams=streams,
            ),
        )
        self._beat_written = sending

    async def run(self) -> None:
        """Heartbeats and the other nodes' records until cancelled."""
        if not self._announced:
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._records.follow(), name="membership.follow")
            tg.create_task(self._beat_forever(), name="membership.heartbeat")

    async def _beat_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._until_next_beat(failing))
            try:
                await self.beat()
            except SluicegateError as exc:
                # The log said no (a broker down, a timeout): the next beat tries again, and
                # if none gets through the other nodes see this one as gone, which it is to them.
                # Said once per outage: retried often, a refusal would flood the log.
                if not failing:
                    logger.warning("heartbeat not written: %s", exc)
                failing = True
                continue
            if failing:
                logger.info("heartbeats are written again")
            failing = False

    def _until_next_beat(self, failing: bool) -> float:
        """Seconds until the next heartbeat: an interval after the last one written was
        sent, or ``_RETRY_INTERVAL`` after one failed.

        After an outage, this node's consumer groups are refused until a heartbeat gets
        through (``seen_as_live``): retried soon, it does within moments of the log
        answering again, not an interval later. A retry during an outage the log knows
        of costs nothing (refused at once). A beat written late (it waited out the
        outage in the producer) was sent long ago, so the next one goes at once.
        """
        written = self._beat_written
        if failing or written is None:
            return min(self._interval, _RETRY_INTERVAL)
        return max(0.0, written + self._interval - self._monotonic())

    async def leave(self) -> None:
        """Say this node is gone (a tombstone), so that nobody forwards to it any more."""
        if self._announced:
            self._announced = False
            await self._records.delete(self.node_id)
