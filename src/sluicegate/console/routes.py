"""``/console``: the web console's page, scripts and styles, served from the package.

The console is static: one HTML shell and plain ES modules that call the gateway's own
APIs with the API key the user signs in with. Nothing here reads data or needs
credentials, so the routes are public; what a client may see is decided by the APIs the
scripts call, as for any program.

Files are read once, when the app is built, and answered from memory with an ``ETag``.
Scripts and styles have no hash in their names (there is no build step to add one), so
they are revalidated on each load (``no-cache`` + ``If-None-Match`` → 304): an upgraded
gateway never runs last version's scripts. Vendored libraries carry their version in
their path and may be kept for a day.

Every answer, errors included, carries a Content-Security-Policy that allows scripts,
styles, images and connections from this origin only, and no framing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from sluicegate.errors import NotFound, SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Endpoint, Route, plain_errors

__all__ = ["CONTENT_SECURITY_POLICY", "ConsoleFiles", "routes"]

CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".txt": b"text/plain; charset=utf-8",
}
_REVALIDATE = b"no-cache"
#: Vendored files sit under a versioned directory: a new version is a new URL.
_VERSIONED = b"public, max-age=86400"
#: Names the static tree may hold (no dot files, no parent references).
_INDEX = "index.html"


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: bytes
    etag: bytes
    cache_control: bytes


def _walk(root: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in root.iterdir():
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        else:
            found[prefix + entry.name] = entry
    return found


class ConsoleFiles:
    """The static tree, in memory: path under ``/console/`` → file."""

    def __init__(self, root: Traversable | None = None) -> None:
        root = root or resources.files("sluicegate.console").joinpath("static")
        self._files: dict[str, _File] = {}
        for path, entry in _walk(root).items():
            suffix = path[path.rfind(".") :] if "." in path else ""
            content_type = _TYPES.get(suffix)
            if content_type is None:
                continue  # a licence without an extension is read from the repository
            body = entry.read_bytes()
            etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
            cache = _VERSIONED if path.startswith("vendor/") else _REVALIDATE
            self._files[path] = _File(body, content_type, etag, cache)
        if _INDEX not in self._files:
            raise RuntimeError("the console's index.html is missing from the package")

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def answer(self, path: str, if_none_match: str | None) -> Response:
        """The file at ``path``: 200, or 304 when the client holds this version."""
        found = self._files.get(path)
        if found is None:
            raise NotFound(f"no console file at /console/{path[:200]}")
        headers = [
            *SECURITY_HEADERS,
            (b"cache-control", found.cache_control),
            (b"etag", found.etag),
        ]
        if if_none_match is not None and found.etag.decode() in _etags(if_none_match):
            return Response(b"", 304, content_type=None, headers=headers)
        return Response(found.body, content_type=found.content_type, headers=headers)


def _etags(header: str) -> set[str]:
    # Weak validators compare equal to strong ones for GET (RFC 9110 13.1.2).
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def render_error(exc: SluicegateError, request: Request) -> Response:
    """The plain error body, with the console's security headers."""
    response = plain_errors(exc, request)
    response.headers.extend(SECURITY_HEADERS)
    return response


def routes(files: ConsoleFiles | None = None) -> list[Route]:
    """``/console`` (the page) and ``/console/{path}`` (its modules, styles, libraries)."""
    tree = files or ConsoleFiles()

    async def index(request: Request) -> Response:
        return tree.answer(_INDEX, request.header("if-none-match"))

    async def asset(request: Request) -> Response:
        return tree.answer(request.path_params["path"], request.header("if-none-match"))

    def public(path: str, endpoint: Endpoint) -> Route:
        return Route(
            path, endpoint, authenticated=False, render_error=render_error, dialect="console"
        )

    return [
        public("/console", index),
        public("/console/", index),
        public("/console/{path:path}", asset),
    ]
