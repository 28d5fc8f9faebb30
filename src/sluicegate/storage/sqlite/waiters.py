"""Long-poll support: futures parked per partition, woken by the writer after a commit.

No polling and no thread: a waiter is one future registered under each partition it
watches, with the position it waits to see passed. After each commit the writer calls
``advanced`` for the partitions whose high watermark moved, which costs nothing for
partitions nobody waits on and one dict walk for those somebody does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from sluicegate.storage.sqlite.catalog import PartitionState

__all__ = ["Waiters"]


class Waiters:
    """Futures waiting for partitions' high watermarks to pass a position."""

    def __init__(self) -> None:
        self._by_partition: dict[PartitionState, dict[asyncio.Future[bool], int]] = {}
        #: Waits in progress (a wait on several partitions counts once), for /metrics.
        self.count = 0

    def __contains__(self, state: PartitionState) -> bool:
        return state in self._by_partition

    async def wait(self, positions: Mapping[PartitionState, int], timeout: float) -> bool:
        """Wait until one partition's high watermark passes its position; False on timeout."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for state, position in positions.items():
            self._by_partition.setdefault(state, {})[future] = position
        self.count += 1
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # The wake-up may have landed just as the timeout fired.
            return future.done() and not future.cancelled() and future.result()
        finally:
            self.count -= 1
            for state in positions:
                parked = self._by_partition.get(state)
                if parked is not None:
                    parked.pop(future, None)
                    if not parked:
                        del self._by_partition[state]

    def advanced(self, state: PartitionState) -> None:
        """Wake the waiters that ``state``'s new high watermark has passed."""
        parked = self._by_partition.get(state)
        if parked is None:
            return
        high = state.high
        woken = [future for future, position in parked.items() if high > position]
        for future in woken:
            del parked[future]
            if not future.done():
                future.set_result(True)
        if not parked:
            del self._by_partition[state]

    def wake(self, states: Iterable[PartitionState], arrived: bool) -> None:
        """Wake everyone waiting on ``states`` (a deleted topic), whatever their position."""
        for state in states:
            for future in self._by_partition.pop(state, {}):
                if not future.done():
                    future.set_result(arrived)

    def wake_all(self) -> None:
        """Release every waiter with False (the log is closing)."""
        self.wake(list(self._by_partition), arrived=False)
