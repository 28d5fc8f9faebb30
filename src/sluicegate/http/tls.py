"""TLS for the listener, and the client certificate in the ASGI scope.

uvicorn verifies client certificates (given an ``ssl.SSLContext`` that asks for them)
but does not put them in the ASGI scope. ``with_tls_extension`` derives a protocol class
from any of uvicorn's HTTP or WebSocket protocols that, once per connection, reads the
peer certificate from the TLS transport and adds the ASGI TLS extension to the scope of
every request on that connection::

    scope["extensions"]["tls"] = {"client_cert_chain": [PEM], "client_cert_name": ...,
                                  "client_cert_error": None, "tls_version": ..., ...}

Wrapping the per-connection ``app`` works the same way for every uvicorn protocol
(httptools, h11, websockets, wsproto), because each calls ``self.app(scope, ...)``;
no parser internals are touched. ``uvicorn_tls_options`` puts it together for
``uvicorn.Config``; ``peer_certificate(scope)`` is what the app reads.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from sluicegate.config import TlsSettings
from sluicegate.core.auth.certificates import PeerCertificate, parse_certificate
from sluicegate.errors import ConfigError
from sluicegate.http.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "TlsHttpToolsProtocol",
    "TlsWebSocketProtocol",
    "UvicornTlsOptions",
    "peer_certificate",
    "server_ssl_context",
    "tls_extension",
    "uvicorn_tls_options",
    "with_tls_extension",
]

P = TypeVar("P", bound=asyncio.Protocol)

_TLS_VERSIONS = {
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The listener's context; with ``client_ca``, client certificates are verified."""
    if tls.certfile is None:
        raise ConfigError("server.tls.certfile", "required to listen with TLS")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.minimum_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    try:
        context.load_cert_chain(tls.certfile, tls.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "server.tls.certfile", f"cannot load certificate and key: {exc}"
        ) from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("server.tls.client_ca", f"cannot load CA bundle: {exc}") from None
        context.verify_mode = (
            ssl.CERT_REQUIRED if tls.client_cert == "required" else ssl.CERT_OPTIONAL
        )
    return context


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection, or ``None`` if it is not TLS."""
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name: str | None = None
    if chain:
        try:
            name = parse_certificate(chain[0]).subject
        except ValueError:
            chain, name = [], None
    return {
        # Python before 3.13 exposes only the leaf certificate of the verified chain.
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "server_cert": None,
    }


def _add_extension(app: ASGIApp, extension: dict[str, Any]) -> ASGIApp:
    async def app_with_tls(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions")
        if extensions is None:
            scope["extensions"] = {"tls": extension}
        else:
            extensions["tls"] = extension
        await app(scope, receive, send)

    return app_with_tls


def with_tls_extension(base: type[P]) -> type[P]:
    """A subclass of a uvicorn protocol that adds the ASGI TLS extension to each scope."""

    class WithTls(base):  # type: ignore[valid-type,misc]
        app: ASGIApp

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            extension = tls_extension(transport)
            if extension is not None:
                # Once per connection: the handshake is over when this is called.
                self.app = _add_extension(self.app, extension)

    WithTls.__name__ = WithTls.__qualname__ = f"Tls{base.__name__}"
    return WithTls


TlsHttpToolsProtocol = with_tls_extension(HttpToolsProtocol)
TlsWebSocketProtocol = with_tls_extension(WebSocketsSansIOProtocol)


def peer_certificate(scope: Scope) -> PeerCertificate | None:
    """The verified client certificate of the connection ``scope`` belongs to, if any."""
    extensions = scope.get("extensions")
    if not extensions:
        return None
    tls = extensions.get("tls")
    if not tls:
        return None
    chain = tls.get("client_cert_chain")
    if not chain:
        return None
    try:
        return parse_certificate(chain[0])
    except ValueError:
        return None


class UvicornTlsOptions(TypedDict, total=False):
    """Keyword arguments for ``uvicorn.Config`` that switch on TLS (and client certs)."""

    http: type[asyncio.Protocol]
    ws: type[asyncio.Protocol]
    ssl_context_factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]


def uvicorn_tls_options(
    tls: TlsSettings, http: type[HttpToolsProtocol] = HttpToolsProtocol
) -> UvicornTlsOptions:
    """``uvicorn.Config(app, **uvicorn_tls_options(tls), ...)``; empty without a certificate.

    ``http`` is the HTTP protocol to add the TLS extension to.
    """
    if tls.certfile is None:
        return {}
    context = server_ssl_context(tls)  # built now, so a bad file stops the start-up
    return {
        "http": TlsHttpToolsProtocol if http is HttpToolsProtocol else with_tls_extension(http),
        "ws": TlsWebSocketProtocol,
        "ssl_context_factory": lambda _config, _default: context,
    }
