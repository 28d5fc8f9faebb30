"""Records v2 text produce of this tree against other commits, in one interleaved run.

    python -m bench.compare REV [REV ...] [--duration SECONDS]

Run-to-run noise on this shared machine is larger than most changes (see
``docs/design-notes.md``), so "before" and "after" are only comparable when measured
together. Each ``REV`` is exported with ``git archive`` into a temporary directory and
served from there (``PYTHONPATH=<export>/src``, the same interpreter and dependencies);
the working tree is served as ``HEAD+worktree``. The bare-ASGI baseline and every server
take turns in one-second wrk runs, in a rotating order, as ``bench.http_produce`` does.
Writes ``bench/results/compare.json``; prints requests/s and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.http_produce import TEXT_BODY, _entry, take_turns
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.wrk import combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["export_tree", "run", "server_env", "source_trees"]

ROOT = Path(__file__).resolve().parent.parent
WORKTREE = "HEAD+worktree"


def export_tree(rev: str, into: Path) -> Path:
    """The tree of ``rev`` under ``into``; ``ValueError`` if git does not know it."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise ValueError(f"git archive {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def source_trees(stack: ExitStack, revs: list[str]) -> dict[str, Path | None]:
    """The work tree (``None``: served as installed) and an export of each of ``revs``,
    removed when ``stack`` closes."""
    sources: dict[str, Path | None] = {WORKTREE: None}
    for rev in revs:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-rev-")))
        sources[rev] = export_tree(rev, scratch)
    return sources


def server_env(source: Path | None) -> dict[str, str] | None:
    """The environment that makes a server run ``source``'s code (``None``: the work tree)."""
    return {"PYTHONPATH": str(source / "src")} if source is not None else None


def run(revs: list[str], duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Requests/s of the baseline, this tree and each of ``revs``, taking turns."""
    with ExitStack() as stack:
        targets = {"http-baseline": (stack.enter_context(baseline_server()), TEXT_BODY)}
        for name, source in source_trees(stack, revs).items():
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-data-"))
            env = server_env(source)
            server = stack.enter_context(serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=env))
            spread_helper_threads(server.pid)
            url = f"{server.url}/v2/topics/bench/records"
            headers = {"content-type": "application/json"}
            httpx.post(url, content=TEXT_BODY, headers=headers).raise_for_status()
            targets[name] = (url, TEXT_BODY)
        runs = take_turns(targets, duration)
    rates = {name: combined(results) for name, results in runs.items()}
    base = rates["http-baseline"][0]
    return {name: _entry(rps, "requests/s", base, p99_ms=p99) for name, (rps, p99) in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="+", help="commits to compare with the working tree")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per server")
    args = parser.parse_args()
    results = run(args.revs, args.duration)
    out = ROOT / "bench" / "results" / "compare.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, entry in results.items():
        print(f"{name:24} {entry['value']:>10,.0f} requests/s  ratio {entry['ratio']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
