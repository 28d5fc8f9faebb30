"""Each client's own streams: its test events and its dead events.

``POST /ce/tools/consumer/test`` stores a test event, and a consumer reports an event it
cannot handle as dead (``POST …/dead``, WebSocket ``dead:``). Both belong to the client,
not to an event type: they live in two internal single-partition topics per client,
created on first use. Every consumer instance of the client created with ``test=true``
(``dead=true``) reads all of the stream, whatever its group: "seen by every consumer
instance of the client, whatever its group". Each instance starts at its group's
committed position and goes on from its own; a confirmation moves the group's position,
so an instance created later skips what one before it confirmed
(``core/consumers/instance.py``).

Topic names: ``__sluicegate_ce_test.<client>`` and ``__sluicegate_ce_dead.<client>``,
the client name made topic-legal (characters outside ``[a-zA-Z0-9._-]`` become ``_``)
plus ``-`` and 8 hex digits of its SHA-256, so that two client names never share a
topic (``a@b`` and ``a:b`` both read ``a_b``).
"""

from __future__ import annotations

import functools
import hashlib
import re

from sluicegate.core.topics import INTERNAL_PREFIX

__all__ = ["DEAD_PREFIX", "STREAM_PARTITIONS", "TEST_PREFIX", "dead_topic", "test_topic"]

TEST_PREFIX = f"{INTERNAL_PREFIX}_ce_test."
DEAD_PREFIX = f"{INTERNAL_PREFIX}_ce_dead."
#: One partition: a client's test and dead events keep the order they were stored in.
STREAM_PARTITIONS = 1

_ILLEGAL = re.compile(r"[^a-zA-Z0-9._-]")
_MAX_TOPIC = 249


@functools.lru_cache(maxsize=4096)
def _suffix(client_id: str) -> str:
    digest = hashlib.sha256(client_id.encode()).hexdigest()[:8]
    # The longest prefix leaves room for the digest and its dash within Kafka's 249.
    room = _MAX_TOPIC - max(len(TEST_PREFIX), len(DEAD_PREFIX)) - len(digest) - 1
    return f"{_ILLEGAL.sub('_', client_id)[:room]}-{digest}"


def test_topic(client_id: str) -> str:
    """The internal topic holding ``client_id``'s test events."""
    return TEST_PREFIX + _suffix(client_id)


def dead_topic(client_id: str) -> str:
    """The internal topic holding ``client_id``'s dead events."""
    return DEAD_PREFIX + _suffix(client_id)


# Not tests, whatever pytest thinks of a function called test_* imported into a test module.
test_topic.__test__ = False  # type: ignore[attr-defined]
