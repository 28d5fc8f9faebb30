"""The event loop every command (and the benchmarks' servers) runs on."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["run_async"]


def run_async(coro: Any) -> Any:
    """Run ``coro`` on uvloop where available; ``asyncio.Runner`` owns the loop."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
