"""How the console's browser tests and benchmarks start Debian's Chromium headless.

The background-networking flags matter on a closed network: without them Chromium keeps
trying to reach its vendor's hosts at every start.
"""

from __future__ import annotations

import os

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

#: The browser binary: Debian's ``chromium`` package, or ``SLUICEGATE_CHROMIUM``.
CHROMIUM = os.environ.get("SLUICEGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
