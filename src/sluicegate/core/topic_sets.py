"""Sets of topic names, shared by everyone who holds an equal one.

Consumer instances of one subscription read the same topics: each instance keeps the set
it joined with, and the group coordinator keeps each member's. A ``frozenset`` takes 216
bytes even for one name, so 10,000 streams of one subscription would hold 20,000 equal
sets; shared, they hold one. Sets are held weakly here: one nobody uses is forgotten.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

__all__ = ["shared_topics"]

_SETS: weakref.WeakValueDictionary[frozenset[str], frozenset[str]] = weakref.WeakValueDictionary()


def shared_topics(topics: Iterable[str]) -> frozenset[str]:
    """A frozenset of ``topics``: the one already in use when there is an equal one."""
    wanted = topics if isinstance(topics, frozenset) else frozenset(topics)
    shared = _SETS.get(wanted)
    if shared is None:
        _SETS[wanted] = shared = wanted
    return shared
