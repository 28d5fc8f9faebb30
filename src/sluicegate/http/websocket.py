"""The WebSocket handshake's HTTP side: refusing an upgrade with a real HTTP response.

ASGI's ``websocket.http.response`` extension lets the app answer the handshake with any
status, headers and body instead of ``101``: uvicorn offers it (every WebSocket
protocol of its own) and Hypercorn too. Without it, the only refusal is a
``websocket.close`` before ``websocket.accept``, which both servers turn into a bare
``403``: the dialect's error body is lost, but the upgrade is refused all the same.
"""

from __future__ import annotations

from sluicegate.http.responses import Response
from sluicegate.http.types import Scope, Send

__all__ = ["HTTP_RESPONSE_EXTENSION", "SEND_TEXTS", "refuse_handshake", "send_texts"]

HTTP_RESPONSE_EXTENSION = "websocket.http.response"
#: RFC 6455's "policy violation": the close code of a handshake refused without the
#: extension (servers answer it with 403 before any upgrade).
_POLICY = 1008


async def refuse_handshake(scope: Scope, send: Send, response: Response) -> None:
    """Answer the handshake of ``scope`` with ``response`` instead of upgrading."""
    extensions = scope.get("extensions") or {}
    if HTTP_RESPONSE_EXTENSION not in extensions:
        await send({"type": "websocket.close", "code": _POLICY})
        return
    start = response.start_message()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": start["status"],
            "headers": start["headers"],
        }
    )
    await send({"type": "websocket.http.response.body", "body": response.body})


#: The ASGI extension of ``http/websocket_bursts.py``: many text messages, one write.
SEND_TEXTS = "sluicegate.websocket.send_texts"


async def send_texts(scope: Scope, send: Send, texts: list[bytes]) -> None:
    """Send each of ``texts`` (UTF-8) as one text message: in one write where the server
    offers ``SEND_TEXTS``, else one ``websocket.send`` each."""
    if SEND_TEXTS in (scope.get("extensions") or {}):
        await send({"type": SEND_TEXTS, "texts": texts})
        return
    for text in texts:
        await send({"type": "websocket.send", "text": text.decode()})
