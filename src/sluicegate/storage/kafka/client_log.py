"""librdkafka's own log lines, in the gateway's log, each said once in a while.

librdkafka logs every failed connection attempt, and tries again every few hundred
milliseconds: a cluster that refuses the gateway's login, or a broker certificate it does
not trust, made about three error lines a second per client, the same line each time but
for the milliseconds it names. The node says what is wrong once (``KafkaNode``); here a
line like one said in the last ``REPEAT_WINDOW`` seconds is dropped, and the next one let
through says how many were.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

__all__ = ["REPEAT_WINDOW", "Repeats", "client_log"]

#: Seconds in which a line like one let through is dropped.
REPEAT_WINDOW = 10.0
#: Lines remembered at most; more (a flood of different lines) starts over.
_REMEMBERED = 1024
#: What differs between two reports of the same failure: durations, and the state the
#: connection was in ("(after 301ms in state AUTH_REQ)").
_VARYING = re.compile(r"\(after \d+ms in state \w+\)|\d+ms")


class Repeats(logging.Filter):
    """Drops a record whose message is one let through less than ``window`` seconds ago,
    the numbers of milliseconds in it aside, and counts it for the next one let through.

    Called by the threads that serve librdkafka's queues (a client's poll) and by the
    loop; a race between two of them lets one line too many through, nothing worse.
    """

    def __init__(
        self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window = window
        self._clock = clock
        #: Per line (its varying parts removed): when it was let through, and how many
        #: like it were dropped since.
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        line = _VARYING.sub("", message)
        now = self._clock()
        seen = self._seen.get(line)
        if seen is not None:
            said, dropped = seen
            if now - said < self._window:
                self._seen[line] = (said, dropped + 1)
                return False
            if dropped:
                record.msg = "%s (and %d more like it in the %.0f s before)"
                record.args = (message, dropped, now - said)
        elif len(self._seen) >= _REMEMBERED:
            self._seen.clear()
        self._seen[line] = (now, 0)
        return True


client_log = logging.getLogger("sluicegate.storage.kafka.librdkafka")
client_log.addFilter(Repeats())
