"""Where an event goes after ``max_deliveries`` deliveries without a confirmation.

The consumer core knows no event format: the caller (CloudEvents: the client's dead
stream, ``core/cloudevents/dead_letters.py``) says how a record is written there. The
write must be durable when ``dead_letter`` returns: the group commits past the event
right after.
"""

from __future__ import annotations

from typing import Protocol

from sluicegate.core.records import Record

__all__ = ["DeadLetters"]


class DeadLetters(Protocol):
    """Writes a record that its group gave up on where its owner will find it."""

    async def dead_letter(self, owner: str, group: str, record: Record, deliveries: int) -> None:
        """Durably store ``record`` as dead: ``owner``'s storage group ``group`` had it
        delivered ``deliveries`` times without confirming it."""
        ...
