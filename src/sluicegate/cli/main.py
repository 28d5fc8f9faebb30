"""The ``sluicegate`` command."""

from __future__ import annotations

import faulthandler
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from sluicegate import __version__
from sluicegate.cli.event_loop import run_async
from sluicegate.cli.options import EXIT_USAGE, nonempty_data_dir
from sluicegate.cli.output import error
from sluicegate.config import Settings, load_settings
from sluicegate.errors import ConfigError, DataDirectoryError, SluicegateError

__all__ = ["app", "main"]

app = typer.Typer(
    name="sluicegate",
    help="An event gateway: Kafka-style REST produce, topic publish/consume and CloudEvents "
    "over one durable, partitioned log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help texts are Markdown: their paragraphs reflow to the terminal's width.
    rich_markup_mode="markdown",
)

E = TypeVar("E", bound=BaseException)

#: Exit codes: 0 ok, 1 the operation failed, 2 (``EXIT_USAGE``) bad usage or configuration.
EXIT_FAILED = 1


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    error(message)
    return typer.Exit(code)


def settings_from(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Settings from the file, environment and flags, or exit 2 naming the bad key."""
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise fail(f"configuration: {exc.message}", EXIT_USAGE) from None


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file.", envvar="SLUICEGATE_CONFIG"),
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on; 0 picks a free one [8080].")
    ] = None,
    # A string, not a Path: Path("") is ".", and an empty value must be refused, not
    # taken for the current directory.
    data_dir: Annotated[
        str | None,
        typer.Option(help="Where the SQLite log lives [./data].", callback=nonempty_data_dir),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve every request as admin. Local experiments only: loopback."
        ),
    ] = False,
) -> None:
    """Serve the gateway until SIGINT or SIGTERM."""
    from sluicegate.cli.serve import serve as serve_forever
    from sluicegate.observability.logging import configure_logging

    overrides: dict[str, Any] = {"server": {}, "storage": {}}
    if host is not None:
        overrides["server"]["host"] = host
    if port is not None:
        overrides["server"]["port"] = port
    if data_dir is not None:
        overrides["storage"]["data_dir"] = data_dir
    if no_auth:
        overrides["auth"] = {"enabled": False}
    settings = settings_from(config, overrides)
    configure_logging(settings.server.log_level, settings.server.log_format)
    # A fatal signal in native code (librdkafka has aborted a process on a malformed
    # answer) leaves every thread's Python stack on stderr: what was running, not a bare
    # "double free".
    faulthandler.enable()
    try:
        run_async(serve_forever(settings))
    except* ConfigError as group:
        raise fail(f"configuration: {_first(group).message}", EXIT_USAGE) from None
    except* DataDirectoryError as group:
        # The operator's to mend (another server holds it, permissions, a full disk): the
        # message says which directory and why; where it was found adds nothing.
        raise fail(str(_first(group))) from None
    except* SluicegateError as group:
        # What stopped the server is logged with its traceback (which task, where); the
        # line on stderr is the error itself, not the task groups around it.
        logging.getLogger("sluicegate.serve").error("the server stopped", exc_info=group)
        raise fail(str(_first(group))) from None


def _first(group: BaseExceptionGroup[E]) -> E:
    """The first error in ``group``, however deep the task groups nest it."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _register_subcommands() -> None:
    from sluicegate.cli.clients import clients_app, keys_app
    from sluicegate.cli.topics import consume, produce, topics_app

    app.add_typer(topics_app, name="topics")
    app.add_typer(clients_app, name="clients")
    app.add_typer(keys_app, name="keys")
    app.command()(produce)
    app.command()(consume)


_register_subcommands()


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
