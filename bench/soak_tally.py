"""What a soak's load did (``bench.soak``), kept by the load and by its consumers
(``bench.soak_consumers``) alike."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Tally"]


@dataclass
class Tally:
    """What the load did: answers, errors of well-formed requests, bytes stored."""

    ok: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    skipped: int = 0
    dropped_clients: int = 0
    topics_created: int = 0
    stored_bytes: int = 0
    last_offsets: dict[str, int] = field(default_factory=dict)
    #: Records acknowledged per topic (the cursor walks must see them all).
    acknowledged: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(what)
