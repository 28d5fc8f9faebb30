"""``/console``: the page, its modules and styles, served from the package."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import httpx
import pytest

from sluicegate.console.routes import CONTENT_SECURITY_POLICY, ConsoleFiles


def _csp(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY.decode()
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_at_console_and_console_slash(client: httpx.AsyncClient) -> None:
    for path in ("/console", "/console/"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert '<script type="module" src="/console/js/main.js">' in response.text
        _csp(response)


async def test_every_module_the_page_imports_is_served(client: httpx.AsyncClient) -> None:
    """Follows the imports from main.js: a module missing from the package fails here."""
    seen: set[str] = set()
    todo = ["js/main.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(f"/console/{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        base = path.rsplit("/", 1)[0]
        for target in re.findall(r"""(?:from|import\()\s*["'](\.[^"']+)["']""", response.text):
            parts = [*base.split("/"), *target.split("/")]
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            todo.append("/".join(resolved))
    assert {"js/api.js", "js/router.js", "js/views/signin.js"} <= seen


async def test_etag_revalidation_answers_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/console/console.css")
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/css; charset=utf-8"
    etag = first.headers["etag"]
    again = await client.get("/console/console.css", headers={"If-None-Match": f"W/{etag}"})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    _csp(again)
    changed = await client.get("/console/console.css", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


async def test_vendored_library_is_versioned_and_cached(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/vendor/uplot-1.6.32/uPlot.esm.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert "export { uPlot as default }" in response.text


async def test_unknown_file_is_404_with_the_policy(client: httpx.AsyncClient) -> None:
    for path in ("/console/nope.js", "/console/js/", "/console/js/%2E%2E/routes.py"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        _csp(response)


async def test_console_needs_no_credentials() -> None:
    """The files are public: the data behind them is what the API keys guard."""
    from sluicegate.console.routes import routes

    assert all(not route.authenticated for route in routes())


def test_the_licence_of_every_vendored_library_ships_with_it() -> None:
    vendor = resources.files("sluicegate.console").joinpath("static", "vendor")
    for library in vendor.iterdir():
        assert library.joinpath("LICENSE").is_file(), library.name


def test_a_package_without_its_page_fails_at_start(tmp_path: Path) -> None:
    root = tmp_path
    (root / "app.js").write_text("")
    with pytest.raises(RuntimeError, match=r"index\.html"):
        ConsoleFiles(root)
