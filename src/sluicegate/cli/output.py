"""What the command line prints: the server's words as they are, never read as markup.

Names, permission patterns (``orders.[ab]*``) and the server's error messages
(``expected 1-249 characters of [a-zA-Z0-9._-]``) hold brackets that Rich's markup takes
for tags: dropped (a pattern shown wider than it is), or a ``MarkupError`` instead of the
listing. Every console here prints text as given; emphasis is a style of a ``Text``.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

__all__ = ["emphasized", "err", "error", "out"]

out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


def emphasized(*parts: str) -> Text:
    """``parts`` end to end, every second one in bold: ``emphasized("deleted topic ", name)``."""
    return Text.assemble(*((part, "bold") if i % 2 else part for i, part in enumerate(parts)))


def error(message: str) -> None:
    """``error: message`` on stderr, on one line however long (a path, a URL)."""
    # Not wrapped at the console's width (80 columns when stderr is no terminal): a
    # script or a log search reads an error as one line.
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
