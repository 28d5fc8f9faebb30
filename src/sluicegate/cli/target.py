"""Where CLI commands act: a running server (its admin API) or a data directory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from sluicegate.cli.event_loop import run_async
from sluicegate.cli.options import EXIT_USAGE
from sluicegate.errors import SluicegateError
from sluicegate.http.pagination import MAX_LIMIT

__all__ = [
    "AdminClient",
    "TargetError",
    "confirm_deletion",
    "open_target",
    "run_command",
    "segment",
]


class TargetError(Exception):
    """A CLI-facing failure: the message is for people, the exit code for scripts."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def segment(name: str) -> str:
    """``name`` as one segment of a path: a ``?`` or ``#`` in it would otherwise start a
    query or fragment, and ``clients delete 'ops?x'`` delete the client ``ops``."""
    return quote(name, safe="")


def _check_url(url: str) -> None:
    # httpx's own word for this is "UnsupportedProtocol", which names no fix.
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in {"http", "https"} or not parsed.host:
        raise TargetError(f"--url must start with http:// or https:// (got {url!r})", EXIT_USAGE)


class AdminClient:
    """The admin API (and topics v1 consume) of a running server, or of an in-process app
    (``transport``).

    ``in_process``: the app runs in this process (``--data-dir``), so no server answered
    and an error's HTTP status is an implementation detail, left out of its message.
    """

    def __init__(
        self,
        url: str,
        key: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        in_process: bool = False,
    ) -> None:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=90, transport=transport
        )
        self._url = url
        self._in_process = in_process

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/admin/v1<path>``; the JSON answer, or ``TargetError`` for people."""
        response = await self._send(method, f"/admin/v1{path}", **kwargs)
        return response.json() if response.content else None

    async def list_all(self, path: str, *, limit: int = MAX_LIMIT) -> list[dict[str, Any]]:
        """Every item of the list at ``/admin/v1<path>``, following its pages to the end."""
        url: str | None = f"/admin/v1{path}?limit={limit}"
        items: list[dict[str, Any]] = []
        while url is not None:
            response = await self._send("GET", url)
            items.extend(response.json())
            url = response.links.get("next", {}).get("url")
        return items

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.ConnectError:
            raise TargetError(
                f"no sluicegate server at {self._url} (start one with `sluicegate serve`, "
                "or work on a stopped server's data with --data-dir)"
            ) from None
        except httpx.HTTPError as exc:
            raise TargetError(f"request to {self._url} failed: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise TargetError(self._error_message(response))
        return response

    def _error_message(self, response: httpx.Response) -> str:
        """The server's words for a failed request, and its status when a server answered."""
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text
        if self._in_process:
            return message
        hint = "; pass --key or set SLUICEGATE_KEY" if response.status_code == 401 else ""
        return f"{message} (HTTP {response.status_code}{hint})"

    async def list_topics(self) -> list[dict[str, Any]]:
        return await self.list_all("/topics")

    async def create_topic(self, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/topics", json=spec)
        return result

    async def describe_topic(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/topics/{segment(name)}")
        return result

    async def delete_topic(self, name: str) -> None:
        await self.call("DELETE", f"/topics/{segment(name)}")

    async def produce(self, topic: str, records: Sequence[dict[str, Any]]) -> int:
        """Produce text records (``{"key", "value"}``); returns how many were stored."""
        result = await self.call(
            "POST", f"/topics/{segment(topic)}/records", json={"records": records}
        )
        return len(result["offsets"])

    async def consume_messages(self, topic_id: int, body: dict[str, Any]) -> list[Any]:
        """One topics v1 consume (``/api/v1/topics/{id}/consume``): its messages."""
        response = await self._send("POST", f"/api/v1/topics/{topic_id}/consume", json=body)
        messages: list[Any] = response.json()["messages"]
        return messages

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int, timeout: int
    ) -> dict[str, Any]:
        params = {
            "partition": partition,
            "offset": offset,
            "max_records": max_records,
            "timeout": timeout,
        }
        result: dict[str, Any] = await self.call(
            "GET", f"/topics/{segment(topic)}/records", params=params
        )
        return result


@asynccontextmanager
async def open_target(
    url: str, key: str | None, data_dir: str | None, config: Path | None = None
) -> AsyncIterator[AdminClient]:
    """The server at ``url``, or with ``data_dir`` the log on disk (offline, as admin).

    Offline, the whole gateway app runs in this process with authentication off: whoever
    can open the data directory owns it anyway (and that is how a lost admin key is
    replaced). ``config`` supplies the settings, e.g. clients defined in the file.
    """
    if data_dir is None:
        _check_url(url)
        target = AdminClient(url, key)
        try:
            yield target
        finally:
            await target.aclose()
        return
    from sluicegate.app import build_app
    from sluicegate.config import load_settings
    from sluicegate.core.gateway import Gateway
    from sluicegate.storage.base import running
    from sluicegate.storage.factory import open_log

    try:
        settings = load_settings(config, overrides={"storage": {"data_dir": data_dir}})
    except SluicegateError as exc:
        raise TargetError(f"configuration: {exc.message}", 2) from None
    # Checked as written above, then switched off: offline, this command is the only user.
    settings = msgspec.structs.replace(
        settings, auth=msgspec.structs.replace(settings.auth, enabled=False)
    )
    # Offline, the gateway serves only this command: its "auth is off" warning is noise.
    auth_logger = logging.getLogger("sluicegate.auth")
    level = auth_logger.level
    auth_logger.setLevel(logging.ERROR)
    try:
        async with running(open_log(settings)) as log:
            gateway = Gateway(settings, log)
            await gateway.start()
            target = AdminClient(
                "http://local",
                None,
                transport=httpx.ASGITransport(app=build_app(gateway)),
                in_process=True,
            )
            try:
                yield target
            finally:
                await target.aclose()
    except* TargetError as group:
        raise group.exceptions[0] from None
    except* SluicegateError as group:
        raise TargetError(str(group.exceptions[0])) from None
    finally:
        auth_logger.setLevel(level)


def run_command(coro: Any) -> Any:
    """Run a command's coroutine; a ``TargetError`` becomes one line on stderr and an exit."""
    import typer

    from sluicegate.cli.output import error

    try:
        return run_async(coro)
    except TargetError as exc:
        error(str(exc))
        raise typer.Exit(exc.exit_code) from None


def confirm_deletion(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``--yes``; without a terminal to ask on, refuse (exit 2)."""
    import sys

    import typer

    from sluicegate.cli.output import error

    if yes:
        return
    if not sys.stdin.isatty():
        error("refusing to delete without --yes (stdin is not a terminal)")
        raise typer.Exit(2)
    typer.confirm(question, abort=True)
