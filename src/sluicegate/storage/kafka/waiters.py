"""Long-poll support: futures parked per partition, woken when its known end passes them.

What the node knows of each partition's end (``highs``) grows from three sources: its own
acknowledged appends, the tail consumer's fetches, and watermark queries. Waking costs
nothing for partitions nobody waits on and one dict walk for those somebody does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

__all__ = ["Waiters"]

_Key = tuple[str, int]


class Waiters:
    """Futures waiting for partitions' ends to pass a position."""

    def __init__(self) -> None:
        self._by_partition: dict[_Key, dict[asyncio.Future[bool], int]] = {}
        #: The highest end seen per partition: an offset past the last record known.
        self.highs: dict[_Key, int] = {}
        #: Waits in progress (a wait on several partitions counts once), for /metrics.
        self.count = 0

    def passed(self, positions: Mapping[_Key, int]) -> bool:
        """Whether some partition is already known to hold a record at its position."""
        highs = self.highs
        return any(highs.get(key, 0) > position for key, position in positions.items())

    async def wait(self, positions: Mapping[_Key, int], timeout: float) -> bool:
        """Wait until one partition's end passes its position; False on timeout."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for key, position in positions.items():
            self._by_partition.setdefault(key, {})[future] = position
        self.count += 1
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # The wake-up may have landed just as the timeout fired.
            return future.done() and not future.cancelled() and future.result()
        finally:
            self.count -= 1
            for key in positions:
                parked = self._by_partition.get(key)
                if parked is not None:
                    parked.pop(future, None)
                    if not parked:
                        del self._by_partition[key]

    def advanced(self, highs: Mapping[_Key, int]) -> None:
        """Record new ends and wake the waiters they passed."""
        for key, high in highs.items():
            self.advance(key, high)

    def advance(self, key: _Key, high: int) -> None:
        """Record a new end of one partition and wake the waiters it passed."""
        known = self.highs
        if high <= known.get(key, 0):
            return
        known[key] = high
        parked = self._by_partition.get(key)
        if parked is None:
            return
        woken = [future for future, position in parked.items() if high > position]
        for future in woken:
            del parked[future]
            if not future.done():
                future.set_result(True)
        if not parked:
            del self._by_partition[key]

    def forget(self, keys: Iterable[_Key]) -> None:
        """Wake everyone waiting on ``keys`` (a deleted topic) and drop what is known."""
        for key in keys:
            self.highs.pop(key, None)
            for future in self._by_partition.pop(key, {}):
                if not future.done():
                    future.set_result(True)

    def wake_all(self) -> None:
        """Release every waiter with False (the log is closing)."""
        for parked in self._by_partition.values():
            for future in parked:
                if not future.done():
                    future.set_result(False)
        self._by_partition.clear()
