"""``/admin/v1/clients``: create, list, show, change and delete clients; create, list and
revoke their API keys. Every endpoint needs the admin permission on ``*``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import msgspec

from sluicegate.core.auth.apikeys import ApiKey
from sluicegate.core.auth.clients import LATEST_EXPIRY, Client, ClientStore
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.records import format_timestamp, parse_timestamp
from sluicegate.dialects.admin.access import require_admin
from sluicegate.dialects.admin.wire import (
    ClientCreate,
    ClientOut,
    ClientUpdate,
    KeyCreate,
    KeyOut,
    NewKeyOut,
)
from sluicegate.errors import BadRequest
from sluicegate.http.json_body import decode_json
from sluicegate.http.pagination import page_request, paginate
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["ClientsAdmin", "routes"]

#: A new key is a secret: no cache on the way may keep the response.
_NO_STORE = [(b"cache-control", b"no-store")]

T = TypeVar("T")


def _decode(body: bytes, kind: type[T]) -> T:
    return decode_json(body or b"{}", msgspec.json.Decoder(kind).decode)


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else format_timestamp(round(seconds * 1_000_000))


def _permissions(body: ClientUpdate) -> Permissions:
    return Permissions(
        produce=body.produce,
        consume=body.consume,
        admin=body.admin,
        ce_sources=body.ce_sources,
        ce_produce_types=body.ce_produce_types,
        ce_consume_types=body.ce_consume_types,
        ce_max_deliveries=body.ce_max_deliveries,
    )


class ClientsAdmin:
    """The endpoints, over one ``ClientStore``."""

    def __init__(self, store: ClientStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def _key_out(self, key: ApiKey) -> KeyOut:
        return KeyOut(
            id=key.id,
            client=key.client,
            prefix=key.prefix,
            status=key.status(self._clock()),
            created_at=format_timestamp(round(key.created_at * 1_000_000)),
            expires_at=_time(key.expires_at),
            revoked_at=_time(key.revoked_at),
        )

    def _client_out(self, client: Client) -> ClientOut:
        now = self._clock()
        keys = self._store.keys(client.name)
        p = client.permissions
        return ClientOut(
            name=client.name,
            origin=client.origin,
            created_at=_time(client.created_at) if client.origin == "api" else None,
            produce=p.produce,
            consume=p.consume,
            admin=p.admin,
            ce_sources=p.ce_sources,
            ce_produce_types=p.ce_produce_types,
            ce_consume_types=p.ce_consume_types,
            ce_max_deliveries=p.ce_max_deliveries,
            certificate_subjects=client.certificate_subjects,
            active_keys=sum(1 for k in keys if k.status(now) == "active"),
        )

    async def list_clients(self, request: Request) -> Response:
        """Clients by name, a page at a time."""
        require_admin(request)
        wanted = page_request(request, tuple[str])
        page = paginate(self._store.clients(), lambda client: (client.name,), wanted)
        return page.response(request, self._client_out)

    async def create_client(self, request: Request) -> Response:
        require_admin(request)
        body = _decode(await request.body(json=True), ClientCreate)
        client = await self._store.create_client(
            body.name, _permissions(body), body.certificate_subjects
        )
        return json_response(self._client_out(client), 201)

    async def show_client(self, request: Request) -> Response:
        require_admin(request)
        return json_response(self._client_out(self._store.get_client(request.path_params["name"])))

    async def update_client(self, request: Request) -> Response:
        require_admin(request)
        body = _decode(await request.body(json=True), ClientUpdate)
        client = await self._store.update_client(
            request.path_params["name"], _permissions(body), body.certificate_subjects
        )
        return json_response(self._client_out(client))

    async def delete_client(self, request: Request) -> Response:
        require_admin(request)
        await self._store.delete_client(request.path_params["name"])
        return Response(status=204, content_type=None)

    async def list_keys(self, request: Request) -> Response:
        """A client's keys, oldest first, a page at a time."""
        require_admin(request)
        wanted = page_request(request, tuple[float, str])
        keys = self._store.keys(request.path_params["name"])
        page = paginate(keys, lambda key: (key.created_at, key.id), wanted)
        return page.response(request, self._key_out)

    async def create_key(self, request: Request) -> Response:
        require_admin(request)
        body = _decode(await request.body(json=True), KeyCreate)
        created = await self._store.create_key(
            request.path_params["name"], expires_at=self._expiry(body)
        )
        out = self._key_out(created.record)
        result = NewKeyOut(**msgspec.structs.asdict(out), key=created.key)
        return json_response(result, 201, headers=list(_NO_STORE))

    def _expiry(self, body: KeyCreate) -> float | None:
        if body.expires_at is not None and body.expires_in is not None:
            raise BadRequest("give expires_at or expires_in, not both")
        if body.expires_in is not None:
            # Written so that NaN fails too; past year 9999 no RFC 3339 time can show it.
            if not 0 < body.expires_in <= LATEST_EXPIRY - self._clock():
                raise BadRequest(
                    "expires_in must be a positive number of seconds, ending by 9999-12-31",
                    field="expires_in",
                )
            return self._clock() + body.expires_in
        if body.expires_at is not None:
            try:
                return parse_timestamp(body.expires_at) / 1_000_000
            except ValueError as exc:
                raise BadRequest(f"expires_at: {exc}", field="expires_at") from None
        return None

    async def revoke_key(self, request: Request) -> Response:
        require_admin(request)
        await self._store.revoke_key(request.path_params["name"], request.path_params["key_id"])
        return Response(status=204, content_type=None)


def routes(store: ClientStore) -> list[Route]:
    """The clients and keys admin routes."""
    admin = ClientsAdmin(store)
    get, post, delete = frozenset({"GET"}), frozenset({"POST"}), frozenset({"DELETE"})
    one, keys = "/admin/v1/clients/{name}", "/admin/v1/clients/{name}/keys"
    return [
        Route("/admin/v1/clients", admin.list_clients, get, dialect="admin"),
        Route("/admin/v1/clients", admin.create_client, post, dialect="admin"),
        Route(one, admin.show_client, get, dialect="admin"),
        Route(one, admin.update_client, frozenset({"PUT"}), dialect="admin"),
        Route(one, admin.delete_client, delete, dialect="admin"),
        Route(keys, admin.list_keys, get, dialect="admin"),
        Route(keys, admin.create_key, post, dialect="admin"),
        Route(keys + "/{key_id}", admin.revoke_key, delete, dialect="admin"),
    ]
