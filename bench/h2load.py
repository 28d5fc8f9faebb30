"""Drive an HTTP/2 endpoint with h2load (nghttp2's load generator), h2c with prior knowledge.

wrk speaks HTTP/1.1 only; h2load is to HTTP/2 what wrk is here: a C client on its own core,
``connections`` clients with one stream in flight each, posting one JSON body.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from bench.servers import WRK_CPU

__all__ = ["available", "run_h2load"]

_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_REQUESTS = re.compile(r"(\d+) failed, (\d+) errored, (\d+) timeout")
_STATUSES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def available() -> bool:
    """Whether h2load is installed (``apt-get install nghttp2-client``)."""
    return shutil.which("h2load") is not None


def run_h2load(url: str, body: str, seconds: float, connections: int = 64) -> float:
    """Requests/s of ``seconds`` of POSTs of ``body`` to ``url``; raises if any failed."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        data.write(body)
        data.flush()
        command = [
            "taskset",
            "-c",
            str(WRK_CPU),
            "h2load",
            "--threads=1",
            f"--clients={connections}",
            "--max-concurrent-streams=1",
            f"--duration={seconds:g}",
            f"--data={data.name}",
            "--header=content-type: application/json",
            url,
        ]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env={**os.environ}
        ).stdout
    rate, requests, statuses = (
        _RATE.search(output),
        _REQUESTS.search(output),
        _STATUSES.search(output),
    )
    if rate is None or requests is None or statuses is None:
        raise RuntimeError(f"h2load printed no summary:\n{output}")
    # Answers counted by status include those still arriving when the time was up.
    if any(int(count) for count in (*requests.groups(), *statuses.groups()[1:])):
        raise RuntimeError(f"h2load saw failures or non-2xx answers:\n{output}")
    return float(rate[1])
