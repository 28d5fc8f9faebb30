"""The dialects' OpenAPI documents: ``/openapi/`` lists them, ``/docs`` shows them.

The docs page is self-contained HTML (no script or stylesheet from elsewhere), so it
works on a gateway with no way out to the internet.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

from sluicegate.errors import NotFound
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["DOCUMENTS", "load_document", "routes"]

#: name → (package, file) of the document; a dialect with two APIs ships two files.
DOCUMENTS: dict[str, tuple[str, str]] = {
    "records-v2": ("sluicegate.dialects.records_v2", "openapi.json"),
    "schema-registry": ("sluicegate.dialects.schema_registry", "openapi.json"),
    "topics-v1-developer": ("sluicegate.dialects.topics_v1", "developer-openapi.json"),
    "topics-v1": ("sluicegate.dialects.topics_v1", "public-openapi.json"),
    "admin-topics": ("sluicegate.dialects.topic_admin", "openapi.json"),
    "admin-clients": ("sluicegate.dialects.admin", "openapi.json"),
    "cloudevents": ("sluicegate.dialects.cloudevents", "openapi.json"),
}


@cache
def load_document(name: str) -> dict[str, Any]:
    """The parsed OpenAPI document of dialect ``name``."""
    if name not in DOCUMENTS:
        raise NotFound(f"no OpenAPI document called {name!r}; see /openapi/")
    package, filename = DOCUMENTS[name]
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


async def index(request: Request) -> Response:
    return json_response(
        [
            {
                "name": name,
                "title": load_document(name)["info"]["title"],
                "url": f"/openapi/{name}.json",
            }
            for name in DOCUMENTS
        ]
    )


async def document(request: Request) -> Response:
    name = request.path_params["name"]
    return json_response(load_document(name))


#: The keys of an OpenAPI path item that are operations.
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _render(name: str, doc: dict[str, Any]) -> str:
    parts = [f"<section><h2>{html.escape(doc['info']['title'])}</h2>"]
    parts.append(f"<p><a href='/openapi/{name}.json'>/openapi/{name}.json</a></p>")
    description = doc["info"].get("description", "")
    parts.append(f"<pre class='desc'>{html.escape(description)}</pre>")
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue  # a path's own summary, parameters or x- extensions
            parts.append(
                f"<details><summary><b>{method.upper()}</b> <code>{html.escape(path)}</code> "
                f"— {html.escape(operation.get('summary', ''))}</summary><ul>"
            )
            for param in operation.get("parameters", []):
                parts.append(
                    f"<li>{html.escape(param['in'])} <code>{html.escape(param['name'])}</code>"
                    f"{' (required)' if param.get('required') else ''}</li>"
                )
            for status, response in operation.get("responses", {}).items():
                description = html.escape(response.get("description", ""))
                parts.append(f"<li><b>{html.escape(status)}</b> {description}</li>")
            parts.append("</ul></details>")
    parts.append("</section>")
    return "".join(parts)


async def docs(request: Request) -> Response:
    body = "".join(_render(name, load_document(name)) for name in DOCUMENTS)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sluicegate API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre.desc{white-space:pre-wrap;background:#f6f6f6;padding:1em}"
        "details{margin:.5em 0}code{background:#eee}</style></head>"
        f"<body><h1>sluicegate API</h1>{body}</body></html>"
    )
    return Response(page.encode(), content_type=b"text/html; charset=utf-8")


def routes() -> list[Route]:
    """Routes for the documents; open to all, like the APIs' published descriptions."""
    return [
        Route("/openapi/", index, authenticated=False),
        Route("/openapi/{name}.json", document, authenticated=False),
        Route("/docs", docs, authenticated=False),
    ]
