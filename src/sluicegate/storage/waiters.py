"""Long-poll support for every backend: futures parked per partition, woken when its end
passes the position they wait for.

No polling and no thread: a waiter is one future registered under each partition it
watches, with the position it waits to see passed. Whoever learns that a partition's end
moved (SQLite's writer after a commit, the Kafka backend from its acknowledgements and
its tail) calls ``advanced``, which costs nothing for partitions nobody waits on and one
dict walk for those somebody does. The key is the backend's own handle on a partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Waiters"]

K = TypeVar("K", bound=Hashable)


def _time_out(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class Waiters(Generic[K]):
    """Futures waiting for partitions' ends (one past their last record) to pass a position."""

    def __init__(self) -> None:
        self._by_partition: dict[K, dict[asyncio.Future[bool], int]] = {}
        #: Waits in progress (a wait on several partitions counts once), for /metrics.
        self.count = 0

    def __contains__(self, key: K) -> bool:
        return key in self._by_partition

    async def wait(self, positions: Mapping[K, int], timeout: float) -> bool:
        """Wait until one partition's end passes its position; False on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        for key, position in positions.items():
            self._by_partition.setdefault(key, {})[future] = position
        self.count += 1
        # The timeout answers the future itself, as a wake-up does (whichever comes
        # first wins): no ``asyncio.timeout``, whose Timeout object and bound method an
        # idle stream would hold for its whole wait, and which cancels the task to end it.
        timer = loop.call_later(timeout, _time_out, future)
        try:
            return await future
        finally:
            timer.cancel()
            self.count -= 1
            for key in positions:
                parked = self._by_partition.get(key)
                if parked is not None:
                    parked.pop(future, None)
                    if not parked:
                        del self._by_partition[key]

    def advanced(self, key: K, end: int) -> None:
        """Wake the waiters of ``key`` whose position ``end`` has passed."""
        parked = self._by_partition.get(key)
        if parked is None:
            return
        woken = [future for future, position in parked.items() if end > position]
        for future in woken:
            del parked[future]
            if not future.done():
                future.set_result(True)
        if not parked:
            del self._by_partition[key]

    def wake(self, keys: Iterable[K], arrived: bool) -> None:
        """Wake everyone waiting on ``keys`` (a deleted topic), whatever their position."""
        for key in keys:
            for future in self._by_partition.pop(key, {}):
                if not future.done():
                    future.set_result(arrived)

    def wake_all(self) -> None:
        """Release every waiter with False (the log is closing)."""
        self.wake(list(self._by_partition), arrived=False)
