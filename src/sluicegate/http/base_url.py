"""The absolute URL clients reach this gateway at, for ``Location`` headers.

In order:

1. a configured public base URL (``cloudevents.public_base_url``): behind a load
   balancer or proxy it is the only answer that is always right;
2. else the request's own scheme and ``Host`` header;
3. ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` replace them only when the request
   comes from an address in ``server.trusted_proxies`` — from anyone else they are
   ignored, since any client can send them and would make the gateway hand out URLs to
   a host of its choosing. With several proxies in a chain the first value (the one the
   client-facing proxy set) is taken.

A host that is not a host name, an IP address or a bracketed IPv6 address, with an
optional port, is refused (400): it would end up in a response header.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from sluicegate.errors import BadRequest
from sluicegate.http.request import Request

__all__ = ["BaseUrl"]

_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")
_SCHEMES = frozenset({"http", "https"})


def _first(value: str) -> str:
    return value.split(",", 1)[0].strip()


class BaseUrl:
    """Works out a request's base URL (``https://host:port``, no trailing slash)."""

    def __init__(self, public: str, trusted_proxies: Sequence[str]) -> None:
        self._public = public.rstrip("/")
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def of(self, request: Request) -> str:
        """The base URL the client of ``request`` reached this gateway at."""
        if self._public:
            return self._public
        scope = request.scope
        scheme = str(scope.get("scheme", "http"))
        host = request.header("host")
        if self._proxies and self._trusted(scope.get("client")):
            proto = request.header("x-forwarded-proto")
            if proto is not None and _first(proto).lower() in _SCHEMES:
                scheme = _first(proto).lower()
            forwarded = request.header("x-forwarded-host")
            if forwarded:
                host = _first(forwarded)
        if not host:
            server = scope.get("server")
            if not server:
                raise BadRequest("the request has no Host header to build the URL from")
            name, port = server[0], server[1]
            host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        if _HOST.fullmatch(host) is None:
            raise BadRequest(f"the Host header {host[:100]!r} is not a host[:port]", field="host")
        return f"{scheme}://{host}"

    def _trusted(self, client: object) -> bool:
        if not isinstance(client, (tuple, list)) or not client:
            return False
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        return any(address in network for network in self._proxies)
