"""Who may use the admin API: a client with the admin permission on ``*``."""

from __future__ import annotations

from sluicegate.errors import Unauthenticated
from sluicegate.http.request import Request

__all__ = ["require_admin"]


def require_admin(request: Request) -> None:
    """Raise ``Unauthenticated`` without credentials, ``Forbidden`` without the right."""
    if request.principal is None:
        raise Unauthenticated("this request needs credentials")
    request.principal.require_admin()
