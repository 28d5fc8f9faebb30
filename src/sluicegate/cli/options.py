"""Options the commands share: where the gateway is, who asks, and the answer to "are
you sure?"."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DEFAULT_URL", "ConfigFile", "DataDir", "Key", "Url", "Yes"]

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
