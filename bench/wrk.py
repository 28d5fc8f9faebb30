"""Drive an HTTP endpoint with wrk and read its results as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

__all__ = ["CONNECTIONS", "WrkResult", "combined", "run_wrk"]

#: Connections wrk opens unless told otherwise: each has one request in flight.
CONNECTIONS = 64

# wrk's Lua API: request() builds the request, delay() paces a connection, done() reports.
_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = {content_type}
{auth}
{lua}
local pause = {delay_ms}
if pause > 0 then
  function delay() return pause end
end
function done(summary, latency, requests)
  local out = io.open("{out}", "w")
  out:write(string.format(
    '{{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}}',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
  out:close()
end
"""


class WrkResult(dict[str, Any]):
    @property
    def rps(self) -> float:
        return float(self["requests"]) / (float(self["duration_us"]) / 1e6)

    @property
    def ok(self) -> bool:
        return self["non2xx"] == 0 and self["socket_errors"] == 0


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(
    url: str,
    body: str,
    *,
    connections: int = CONNECTIONS,
    duration: float = 10.0,
    threads: int = 1,
    authorization: str | None = None,
    delay_ms: float = 0.0,
    content_type: str = "application/json",
    lua: str = "",
) -> WrkResult:
    """POST ``body`` to ``url`` for ``duration`` seconds; wrk's numbers as a dict.

    ``lua`` is more of wrk's script (a ``request()`` that varies each request, say); in it
    ``__RUN__`` stands for a string unique to this run.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        script = Path(tmp) / "post.lua"
        auth = (
            f'wrk.headers["Authorization"] = {_lua_string(authorization)}' if authorization else ""
        )
        script.write_text(
            _SCRIPT.format(
                body=_lua_string(body),
                content_type=_lua_string(content_type),
                auth=auth,
                lua=lua.replace("__RUN__", uuid.uuid4().hex[:12]),
                delay_ms=delay_ms,
                out=out,
            )
        )
        subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            check=True,
            capture_output=True,
        )
        return WrkResult(json.loads(out.read_text()))


def combined(results: list[WrkResult]) -> tuple[float, float]:
    """Requests/s over all ``results`` together, and the worst p99 in ms."""
    requests = sum(r["requests"] for r in results)
    seconds = sum(r["duration_us"] for r in results) / 1e6
    return requests / seconds, max(r["p99_us"] for r in results) / 1000
