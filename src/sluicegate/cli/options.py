"""Options the commands share: where the gateway is, who asks, and the answer to "are
you sure?"; and the checks that refuse a bad one before any request is made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sluicegate.cli.output import error

__all__ = [
    "DEFAULT_URL",
    "EXIT_USAGE",
    "ClientName",
    "ConfigFile",
    "DataDir",
    "Key",
    "KeyId",
    "NewClientName",
    "NewTopicName",
    "TopicName",
    "Url",
    "Yes",
    "nonempty_data_dir",
    "usage_error",
]

#: The exit status of bad usage or configuration (1: the operation itself failed).
EXIT_USAGE = 2


def usage_error(message: str) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit (status 2) to raise.

    One line, like every other error of the command line: click's boxed usage panel
    would be the only multi-line error a script has to parse.
    """
    error(message)
    return typer.Exit(EXIT_USAGE)


def _name_check(noun: str, *, in_path: bool) -> Callable[[str], str]:
    """A callback refusing an empty ``noun``, and one that cannot be a path segment.

    Empty, ``.`` or ``..`` (which URL normalisation removes) or a ``/`` (which the router
    decodes, even as ``%2F``) would ask another route, whose internal path the 404 then
    shows. No topic, client or key is named so. A new name goes in a request's body
    (``in_path`` false): the server judges it, and says which characters a name may hold.
    """

    def check(value: str) -> str:
        if not value:
            raise usage_error(f"the {noun} must not be empty")
        if in_path and (value in {".", ".."} or "/" in value):
            reason = "a name holds no '/' and is not '.' or '..'"
            raise usage_error(f"invalid {noun} {value!r}: {reason}")
        return value

    return check


def nonempty_data_dir(value: str | None) -> str | None:
    """Refuse ``--data-dir ''``: it would silently mean the current directory."""
    if value == "":
        raise usage_error("--data-dir must not be empty")
    return value


def _existing_data_dir(value: str | None) -> str | None:
    # Only `serve` starts a new data directory: here a typo would open a new, empty
    # store and show an empty gateway instead of the one meant.
    if nonempty_data_dir(value) is None:
        return None
    path = Path(str(value))
    if not path.exists():
        raise usage_error(
            f"data directory {value} does not exist (`sluicegate serve` creates one; "
            "to prepare one offline, create the directory first)"
        )
    if not path.is_dir():
        raise usage_error(f"data directory {value} is not a directory")
    return value


DEFAULT_URL = "http://127.0.0.1:8080"
Url = Annotated[str, typer.Option(help="URL of a running server.", envvar="SLUICEGATE_URL")]
Key = Annotated[
    str | None,
    typer.Option(help="API key (Bearer).", envvar="SLUICEGATE_KEY", show_default=False),
]
DataDir = Annotated[
    str | None,
    typer.Option(
        help="Work on a data directory directly instead of a server (the server must be stopped).",
        show_default=False,
        callback=_existing_data_dir,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="With --data-dir: the server's TOML settings (for clients defined there).",
        envvar="SLUICEGATE_CONFIG",
        show_default=False,
    ),
]
#: For the commands that delete: without it they ask, or refuse where nobody can answer.
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]
#: Names that go into a request's path: refused when empty or not one path segment.
TopicName = Annotated[str, typer.Argument(callback=_name_check("topic name", in_path=True))]
ClientName = Annotated[str, typer.Argument(callback=_name_check("client name", in_path=True))]
KeyId = Annotated[str, typer.Argument(callback=_name_check("key id", in_path=True))]
#: The name of a topic or client to create: only refused when empty.
NewTopicName = Annotated[str, typer.Argument(callback=_name_check("topic name", in_path=False))]
NewClientName = Annotated[str, typer.Argument(callback=_name_check("client name", in_path=False))]
