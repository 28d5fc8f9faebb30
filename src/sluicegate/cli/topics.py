"""``sluicegate topics``, ``produce`` and ``consume``: the log for people."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import msgspec
import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from sluicegate.cli.options import (
    DEFAULT_URL,
    EXIT_USAGE,
    DataDir,
    Key,
    NewTopicName,
    TopicName,
    Url,
    Yes,
    usage_error,
)
from sluicegate.cli.output import emphasized, err, error, out
from sluicegate.cli.target import (
    AdminClient,
    TargetError,
    confirm_deletion,
    open_target,
    run_command,
)

__all__ = ["consume", "produce", "topics_app"]

topics_app = typer.Typer(
    help="List, create, describe and delete topics.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
#: Seconds one consume of ``--follow`` long-polls for.
_FOLLOW_POLL = 30


@topics_app.command("list")
def list_topics(url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = None) -> None:
    """List topics."""

    async def go() -> list[dict[str, Any]]:
        async with open_target(url, key, data_dir) as target:
            return await target.list_topics()

    topics = run_command(go())
    table = Table("name", "id", "partitions", "retention_ms", "created_at")
    for topic in topics:
        table.add_row(
            topic["name"],
            str(topic["id"]),
            str(topic["partitions"]),
            str(topic["retention_ms"]),
            topic["created_at"],
        )
    out.print(table)


@topics_app.command()
def create(
    name: NewTopicName,
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions.")] = 1,
    retention_ms: Annotated[
        int | None, typer.Option(help="Keep records this long (default: forever).")
    ] = None,
    retention_bytes: Annotated[int | None, typer.Option(help="Per-partition size cap.")] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
) -> None:
    """Create a topic."""
    spec = {
        "name": name,
        "partitions": partitions,
        "retention_ms": retention_ms,
        "retention_bytes": retention_bytes,
    }

    async def go() -> dict[str, Any]:
        async with open_target(url, key, data_dir) as target:
            return await target.create_topic(spec)

    topic = run_command(go())
    out.print(
        emphasized("created topic ", topic["name"], f" (id {topic['id']}, {partitions} partitions)")
    )


@topics_app.command()
def describe(
    name: TopicName, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = None
) -> None:
    """Show a topic's settings and its partitions' offsets."""

    async def go() -> dict[str, Any]:
        async with open_target(url, key, data_dir) as target:
            return await target.describe_topic(name)

    topic = run_command(go())
    for field in ("name", "id", "partitions", "retention_ms", "retention_bytes", "created_at"):
        out.print(f"{field:>16}: {topic[field]}")
    # high - low counts offsets: the records kept on embedded storage; on Kafka also the
    # markers of transactions, and the gaps compaction left.
    table = Table("partition", "low", "high", "offsets")
    for part in topic.get("partition_offsets", []):
        table.add_row(
            str(part["partition"]),
            str(part["low"]),
            str(part["high"]),
            str(part["high"] - part["low"]),
        )
    out.print(table)


@topics_app.command()
def delete(
    name: TopicName,
    yes: Yes = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
) -> None:
    """Delete a topic and all its records."""
    confirm_deletion(f"Delete topic {name!r} and all its records?", yes)

    async def go() -> None:
        async with open_target(url, key, data_dir) as target:
            await target.delete_topic(name)

    run_command(go())
    out.print(emphasized("deleted topic ", name))


#: What ``errors="surrogateescape"`` decodes a byte that is not UTF-8 to.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _lines(stream: TextIO, source: str) -> Iterator[str]:
    """Each line of ``stream`` (decoded with ``surrogateescape``) without its newline.

    A line that is not UTF-8 is refused by its number, before it is sent: as lone
    surrogates it failed deep in the JSON encoder, and strict decoding fails for a whole
    buffer of lines at once, without saying which.
    """
    for number, line in enumerate(stream, 1):
        text = line.rstrip("\n")
        if _NOT_UTF8.search(text):
            raise TargetError(f"line {number} of {source} is not UTF-8", EXIT_USAGE)
        yield text


@contextmanager
def _stdin_lines() -> Iterator[Iterator[str]]:
    """The lines of stdin read as UTF-8, like ``--file``, whatever the locale says.

    Only a line feed ends a line (a carriage return before it stays), as ``sys.stdin``
    reads lines on POSIX.
    """
    stream = io.TextIOWrapper(
        sys.stdin.buffer, encoding="utf-8", errors="surrogateescape", newline="\n"
    )
    try:
        yield _lines(stream, "stdin")
    finally:
        # Closing the wrapper (when it is collected) would close stdin's own buffer.
        stream.detach()


async def _produce(
    target: AdminClient,
    topic: str,
    lines: Iterator[str],
    key_separator: str | None,
    batch: int,
    progress: Progress | None,
    total: int | None,
) -> int:
    task = progress.add_task(f"producing to {topic}", total=total) if progress else None
    sent = 0
    chunk: list[dict[str, Any]] = []
    try:
        for line in lines:
            chunk.append(_record(line, key_separator))
            if len(chunk) >= batch:
                sent += await _send_chunk(target, topic, chunk, progress, task)
                chunk = []
        if chunk:
            sent += await _send_chunk(target, topic, chunk, progress, task)
    except TargetError as exc:
        if not sent:
            raise
        # The batches before are stored for good: say how many, so that a rerun does not
        # produce them twice unknowingly.
        message = f"{exc}; {sent} record(s) before it were produced to {topic}"
        raise TargetError(message, exc.exit_code) from None
    return sent


def _record(line: str, key_separator: str | None) -> dict[str, Any]:
    if key_separator is not None and key_separator in line:
        record_key, _, value = line.partition(key_separator)
        return {"key": record_key, "value": value}
    return {"value": line}


async def _send_chunk(
    target: AdminClient,
    topic: str,
    chunk: list[dict[str, Any]],
    progress: Progress | None,
    task: TaskID | None,
) -> int:
    sent = await target.produce(topic, chunk)
    if progress and task is not None:
        progress.update(task, advance=len(chunk))
    return sent


def produce(
    topic: TopicName,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read lines from this file (else stdin).")
    ] = None,
    key_separator: Annotated[
        str | None, typer.Option(help="Split each line into key and value at this string.")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Records per request.")] = 500,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
) -> None:
    """Produce each line of stdin or a file as one record (durable when this returns)."""
    if key_separator == "":
        raise usage_error("--key-separator must not be empty")

    async def go() -> int:
        async with open_target(url, key, data_dir) as target:
            if file is None:
                with _stdin_lines() as lines:
                    return await _produce(target, topic, lines, key_separator, batch, None, None)
            try:
                with file.open(encoding="utf-8", errors="surrogateescape") as handle:
                    # Counted (for the progress bar) and checked before a record is sent:
                    # a file that is not UTF-8 produces nothing.
                    total = sum(1 for _ in _lines(handle, str(file)))
                    handle.seek(0)
                    with Progress(console=err, transient=True) as progress:
                        return await _produce(
                            target,
                            topic,
                            _lines(handle, str(file)),
                            key_separator,
                            batch,
                            progress,
                            total,
                        )
            except OSError as exc:
                raise TargetError(f"cannot read {file}: {exc.strerror}") from None

    sent = run_command(go())
    err.print(f"produced {sent} record(s) to {topic}")


def consume(
    topic: TopicName,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record, not the end.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Keep waiting for new messages (long polls); prints one JSON line per "
            "message, whose message_id --from resumes after.",
        ),
    ] = False,
    after: Annotated[
        str | None,
        typer.Option("--from", help="Print the messages after this message id (JSON lines)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Print the messages after this RFC 3339 time (JSON lines)."),
    ] = None,
    partition: Annotated[
        int | None, typer.Option(help="Only this partition (default: all).")
    ] = None,
    max_records: Annotated[
        int | None, typer.Option("--max", help="Stop after this many records.")
    ] = None,
    show_keys: Annotated[
        bool, typer.Option("--keys", help="Print each key, a tab, then its value.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
) -> None:
    """Print records' values, one per line, partition by partition.

    With --follow, --from or --since: the topic's messages along one cursor over all its
    partitions (the topics v1 consume API), one JSON line each, as ``kcat -C`` tails.
    """
    cursor = follow or after is not None or since is not None
    if cursor and (partition is not None or show_keys):
        error("--partition and --keys do not apply to --follow/--from/--since")
        raise typer.Exit(2)
    if after is not None and since is not None:
        error("--from and --since cannot be used together")
        raise typer.Exit(2)

    async def go() -> None:
        async with open_target(url, key, data_dir) as target:
            described = await target.describe_topic(topic)
            if cursor:
                start = _cursor_start(after, since, from_beginning)
                await _tail(target, described["id"], start, follow, max_records)
                return
            parts = described["partition_offsets"]
            if partition is not None:
                parts = [p for p in parts if p["partition"] == partition]
                if not parts:
                    raise TargetError(f"topic {topic!r} has no partition {partition}")
            positions = {p["partition"]: p["low"] if from_beginning else p["high"] for p in parts}
            printed = 0
            while True:
                progressed = False
                for part, offset in positions.items():
                    # One partition: long-poll it; several: poll each briefly in turn.
                    wait = (30 if len(positions) == 1 else 1) if follow else 0
                    page = await target.read(topic, part, offset, 500, wait)
                    for record in page["records"]:
                        line = record["value"] if record["value"] is not None else ""
                        if show_keys:
                            line = f"{record['key'] or ''}\t{line}"
                        # As stored: click strips escape sequences when not told otherwise.
                        typer.echo(line, color=True)
                        printed += 1
                        if max_records is not None and printed >= max_records:
                            return
                    progressed = progressed or bool(page["records"])
                    positions[part] = page["next_offset"]
                if not follow and not progressed:
                    return

    try:
        run_command(go())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _cursor_start(after: str | None, since: str | None, from_beginning: bool) -> dict[str, Any]:
    """The first consume's cursor: after an id, at a time, at the start or (default) now."""
    if after is not None:
        return {"after_message_id": after}
    if since is not None:
        return {"since_time": since}
    if from_beginning:
        return {}
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return {"since_time": now}


async def _tail(
    target: AdminClient, topic_id: int, start: dict[str, Any], follow: bool, limit: int | None
) -> None:
    """Print messages from ``start`` on as JSON lines; with ``follow``, never stop waiting."""
    body = dict(start)
    printed = 0
    while True:
        body["timeout_secs"] = _FOLLOW_POLL if follow else 0
        messages = await target.consume_messages(topic_id, body)
        for message in messages:
            typer.echo(msgspec.json.encode(message).decode(), color=True)
            printed += 1
            if limit is not None and printed >= limit:
                return
        if messages:
            body = {"after_message_id": messages[-1]["message_id"]}
        elif not follow:
            return
