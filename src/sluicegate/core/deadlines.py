"""``asyncio.timeout`` for many tasks that share one delay, on a single timer.

Every produce request bounds its wait for the durable commit. ``asyncio.timeout`` does
that with a timer handle per request, scheduled and cancelled again almost every time:
measured in-process, that was a quarter of the records v2 request cost. Here the delay
is the same for everyone, so deadlines expire in the order they were set: they wait in
a FIFO queue, and one timer, set for the oldest live deadline, serves them all.

    deadlines = Deadlines(30.0)
    with deadlines.scope():
        await something()        # TimeoutError if it takes over 30 s

Expiry works as in ``asyncio.timeout``: the task is cancelled, and ``__exit__`` turns
that cancellation (and only that one, told apart by ``Task.uncancel``) into
``TimeoutError``. Cancellation from anywhere else passes through untouched.
"""

from __future__ import annotations

import asyncio
from asyncio import CancelledError, current_task, get_running_loop
from collections import deque
from types import TracebackType
from typing import Any

__all__ = ["Deadline", "Deadlines"]

#: Timers may fire up to a clock tick early (uvloop counts milliseconds).
_TICK = 0.001


class Deadline:
    """One bounded wait: a sync context manager for the body of an ``async`` function."""

    __slots__ = ("_cancelling", "_owner", "_task", "expired", "when")

    def __init__(self, owner: Deadlines) -> None:
        self._owner = owner
        #: The waiting task while inside the scope; ``None`` before and after.
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self.expired = False
        #: The loop time at which the wait is cancelled; set on entry.
        self.when = 0.0

    def __enter__(self) -> Deadline:
        loop = get_running_loop()
        task = current_task(loop)
        if task is None:
            raise RuntimeError("a deadline must be entered inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.when = loop.time() + self._owner.delay
        self._owner._add(self, loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if (
            self.expired
            and exc_type is CancelledError
            and task is not None
            and task.uncancel() <= self._cancelling
        ):
            raise TimeoutError from exc

    def _expire(self) -> None:
        if self._task is not None:
            self.expired = True
            self._task.cancel()


class Deadlines:
    """Hands out ``Deadline`` scopes that all wait ``delay`` seconds at most."""

    def __init__(self, delay: float) -> None:
        if not delay > 0:
            raise ValueError(f"delay must be > 0, got {delay}")
        self.delay = delay
        self._queue: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def scope(self) -> Deadline:
        """A new scope; the clock starts when it is entered."""
        return Deadline(self)

    def __len__(self) -> int:
        """Scopes still queued (exited ones leave lazily, from the front)."""
        return len(self._queue)

    def _add(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._queue
        # Finished scopes leave from the front as new ones arrive, so the queue holds
        # about the scopes in flight rather than everything of the last `delay` seconds.
        while queue and queue[0]._task is None:
            queue.popleft()
        queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(queue[0].when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        queue = self._queue
        loop = get_running_loop()
        now = loop.time() + _TICK
        while queue:
            head = queue[0]
            if head._task is not None:
                if head.when > now:
                    self._timer = loop.call_at(head.when, self._fire)
                    return
                head._expire()
            queue.popleft()
