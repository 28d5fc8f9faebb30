"""Clients and API keys, kept in the log and indexed in memory for the request path.

Clients come from two places: the config file (``auth.clients``: read-only at run time,
edit the file to change them) and the admin API (stored in the internal topic
``__sluicegate_clients``). API keys of either kind of client are stored in
``__sluicegate_api_keys``, by key id, as hashes. Both topics are replayed on ``load`` and
followed by ``follow``, so every node sees every change.

The request path touches only in-memory indexes maintained as records are applied:
SHA-256 digest → active key, client name → ``Principal`` (patterns compiled once per
client version), certificate identity → client name.

Mutations on one node are serialised by a lock; two nodes changing the same client at
the same moment resolve as the log orders the writes (the last one wins). The first
start's admin client is claimed (``StateTopic.claim``): of nodes started together on an
empty cluster, one creates it and its key.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from sluicegate.config import ClientSettings
from sluicegate.core.auth.apikeys import ApiKey, NewApiKey, generate_key, validate_custom_key
from sluicegate.core.auth.certificates import PeerCertificate
from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.auth.principals import Permissions, Principal, validate_client_name
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import BadRequest, ConfigError, Conflict, NotFound, Unauthenticated
from sluicegate.storage.base import Log

__all__ = [
    "ADMIN_CLIENT",
    "Bootstrap",
    "Client",
    "ClientStore",
    "first_start_message",
]

logger = logging.getLogger("sluicegate.auth")

#: The last instant an RFC 3339 timestamp can name (9999-12-31T23:59:59Z), in seconds.
LATEST_EXPIRY = 253_402_300_799.0

ADMIN_CLIENT = "admin"
ADMIN_KEY_VARIABLE = "SLUICEGATE_ADMIN_KEY"
#: Seconds a node that lost the admin claim waits for the winner to store the admin key.
ADMIN_KEY_WAIT = 30.0


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """A named principal and its permissions."""

    name: str
    permissions: Permissions = msgspec.field(default_factory=Permissions)
    #: Certificate identities (CN or SAN) that authenticate as this client.
    certificate_subjects: list[str] = msgspec.field(default_factory=list)
    #: Seconds since the epoch; 0 for clients from the config file.
    created_at: float = 0.0
    #: ``config``: defined in the config file, read-only at run time; ``api``: stored.
    origin: Literal["config", "api"] = "api"

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Client:
        """A client from the config file's ``auth.clients``."""
        return cls(
            name=settings.name,
            permissions=Permissions(
                produce=list(settings.produce),
                consume=list(settings.consume),
                admin=list(settings.admin),
                ce_sources=list(settings.ce_sources),
                ce_produce_types=list(settings.ce_produce_types),
                ce_consume_types=list(settings.ce_consume_types),
                ce_max_deliveries=settings.ce_max_deliveries,
            ),
            certificate_subjects=list(settings.certificate_subjects),
            origin="config",
        )


class Bootstrap(msgspec.Struct, frozen=True, kw_only=True):
    """What the first start created: the admin client, and its key if one was generated."""

    client: str
    #: The generated key, to show once; ``None`` when it came from ``SLUICEGATE_ADMIN_KEY``.
    key: str | None

    def __repr__(self) -> str:
        return f"Bootstrap(client={self.client!r}, key={'***' if self.key else None})"


def _administers(permissions: Permissions) -> bool:
    """Whether ``permissions`` hold the admin permission on every topic (``*``)."""
    return PatternSet(permissions.admin).everything


def first_start_message(bootstrap: Bootstrap, url: str) -> str:
    """The text to print (never log) once after the first start created the admin client."""
    if bootstrap.key is None:
        head = (
            f"No clients were configured: created the client {bootstrap.client!r} with every "
            f"permission and the API key from {ADMIN_KEY_VARIABLE}."
        )
        shown = "$" + ADMIN_KEY_VARIABLE
    else:
        head = (
            f"No clients were configured: created the client {bootstrap.client!r} with every "
            "permission. Its API key, shown only this once:\n\n"
            f"    {bootstrap.key}\n"
        )
        shown = "<the key above>"
    return (
        f"{head}\n"
        "Send it as 'Authorization: Bearer <key>'. Create clients and keys for your "
        "applications with:\n\n"
        f"    export SLUICEGATE_URL={url} SLUICEGATE_KEY={shown}\n"
        "    sluicegate clients create orders-app --produce 'orders.*' --consume 'orders.*'\n"
        "    sluicegate keys create orders-app\n"
    )


class _ActiveKey:
    __slots__ = ("digest", "record")

    def __init__(self, digest: bytes, record: ApiKey) -> None:
        self.digest = digest
        self.record = record


class ClientStore:
    """Clients and their API keys: durable in the log, indexed in memory."""

    def __init__(
        self,
        log: Log,
        configured: Sequence[ClientSettings] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._configured = {c.name: Client.from_settings(c) for c in configured}
        self._stored: StateTopic[Client] = StateTopic(
            log, "clients", Client, on_change=self._client_changed
        )
        self._keys: StateTopic[ApiKey] = StateTopic(
            log, "api_keys", ApiKey, on_change=self._key_changed
        )
        self._lock = asyncio.Lock()
        self._principals: dict[str, Principal] = {}
        self._subjects: dict[str, str] = {}
        self._subjects_of: dict[str, list[str]] = {}
        self._active: dict[bytes, _ActiveKey] = {}
        self._digest_of: dict[str, bytes] = {}
        #: Counts changes to clients and keys, from this node or others: what was looked
        #: up at one generation is still true while it stays the same.
        self.generation = 0
        for name, client in self._configured.items():
            self._index_client(name, client)

    # -- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Replay clients and keys from the log; the log must be running."""
        await self._stored.load()
        await self._keys.load()

    async def follow(self) -> None:
        """Apply changes made on other nodes as they arrive; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._stored.follow(), name="clients.follow")
            tg.create_task(self._keys.follow(), name="api_keys.follow")

    async def bootstrap_admin(self, admin_key: str | None = None) -> Bootstrap | None:
        """On a first start (no client anywhere), create ``admin`` with every permission.

        Its key is ``admin_key`` (the ``SLUICEGATE_ADMIN_KEY`` variable) if given, else a
        new one returned in the result to show once. Returns ``None`` if clients exist,
        and, with a warning, if keys of clients that are gone do.
        """
        if admin_key is not None and not validate_custom_key(admin_key):
            raise ConfigError(
                ADMIN_KEY_VARIABLE, "must be 32 to 256 characters of A-Z, a-z, 0-9, '_' and '-'"
            )
        if self._configured or len(self._stored):
            return None
        if len(self._keys):
            # Keys of clients that are gone: removed from the config file, or their
            # records lost (the internal topic deleted with Kafka's tools, say). A new
            # admin would bring back to life the keys of an old one of that name; the
            # operator decides.
            count = len(self._keys)
            logger.warning(
                "no client exists, but %s (of clients removed from the config file, or "
                "whose records were lost): no admin client was created. Create one on the "
                "storage itself: sluicegate clients create <name> --admin '*' --with-key, "
                "with --config or --data-dir",
                "1 API key does" if count == 1 else f"{count} API keys do",
            )
            return None
        async with self._lock:
            # Nodes started together on an empty cluster all get here: the log decides
            # which one creates the admin client, and only that one makes its key.
            _, won = await self._stored.claim(
                ADMIN_CLIENT,
                Client(
                    name=ADMIN_CLIENT,
                    permissions=Permissions.everything(),
                    certificate_subjects=[],
                    created_at=self._clock(),
                ),
            )
        if not won:
            await self._admin_key_made()
            return None
        created = await self.create_key(ADMIN_CLIENT, key=admin_key)
        return Bootstrap(client=ADMIN_CLIENT, key=None if admin_key else created.key)

    async def _admin_key_made(self) -> None:
        """Wait (bounded) until the node that won the admin claim has stored its key.

        The winner makes the key right after its claim. Waiting for it here means a node
        starts serving only once the key the operator holds works on it too, not a
        follow's latency later; a winner that died between the two leaves an admin client
        without a key, which ``sluicegate keys create`` mends, so the wait ends anyway.
        """
        deadline = time.monotonic() + ADMIN_KEY_WAIT
        while not any(key.client == ADMIN_CLIENT for key in self._keys.values()):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)
            await self._keys.catch_up()

    # -- the request path ------------------------------------------------------------

    def principal(self, name: str) -> Principal | None:
        """The current principal of client ``name``, if it exists."""
        return self._principals.get(name)

    def find_key(self, digest: bytes) -> ApiKey | None:
        """The active (not revoked) key with this SHA-256 digest; expiry is the caller's."""
        active = self._active.get(digest)
        if active is None or not hmac.compare_digest(active.digest, digest):
            return None
        return active.record

    def client_for_certificate(self, cert: PeerCertificate) -> str | None:
        """The client a certificate's CN or SANs map to; ``Unauthenticated`` if several."""
        found: str | None = None
        for identity in cert.identities():
            name = self._subjects.get(identity)
            if name is None or name == found:
                continue
            if found is not None:
                raise Unauthenticated("the TLS client certificate maps to more than one client")
            found = name
        return found

    # -- clients ---------------------------------------------------------------------

    def clients(self) -> list[Client]:
        """Every client, configured and stored, by name."""
        merged = {c.name: c for c in self._stored.values()}
        merged.update(self._configured)
        return [merged[name] for name in sorted(merged)]

    def get_client(self, name: str) -> Client:
        """The client called ``name``, or ``NotFound``."""
        client = self._configured.get(name) or self._stored.get(name)
        if client is None:
            raise NotFound(f"no client named {name!r}")
        return client

    async def create_client(
        self,
        name: str,
        permissions: Permissions,
        certificate_subjects: Sequence[str] = (),
    ) -> Client:
        """Store a new client; ``Conflict`` if the name or a certificate subject is taken."""
        validate_client_name(name)
        permissions.validate()
        async with self._lock:
            if name in self._configured or name in self._stored:
                raise Conflict(f"a client named {name!r} already exists")
            self._check_subjects(name, certificate_subjects)
            client = Client(
                name=name,
                permissions=permissions,
                certificate_subjects=list(certificate_subjects),
                created_at=self._clock(),
            )
            await self._stored.put(name, client)
            return client

    async def update_client(
        self,
        name: str,
        permissions: Permissions,
        certificate_subjects: Sequence[str] = (),
    ) -> Client:
        """Replace a stored client's permissions and certificate subjects."""
        permissions.validate()
        async with self._lock:
            current = self._mutable(name)
            if not _administers(permissions):
                self._keep_an_administrator(name, "taking its admin permission on '*'")
            self._check_subjects(name, certificate_subjects)
            client = Client(
                name=name,
                permissions=permissions,
                certificate_subjects=list(certificate_subjects),
                created_at=current.created_at,
            )
            await self._stored.put(name, client)
            return client

    async def delete_client(self, name: str) -> None:
        """Delete a stored client and every key it has."""
        async with self._lock:
            self._mutable(name)
            self._keep_an_administrator(name, "deleting it")
            # Keys first: a crash in between leaves a client with fewer keys, never keys
            # that would come back to life if the name is used again.
            for key in [k for k in self._keys.values() if k.client == name]:
                await self._keys.delete(key.id)
            await self._stored.delete(name)

    def _keep_an_administrator(self, name: str, change: str) -> None:
        """Refuse a change that would leave no client with the admin permission on ``*``:
        nobody could manage clients and keys through the API any more (a restart does not
        make one: that happens only when there is no client at all)."""
        client = self._stored.get(name)
        if client is None or not _administers(client.permissions):
            return
        if any(_administers(c.permissions) for c in self.clients() if c.name != name):
            return
        raise Conflict(
            f"client {name!r} is the last with the admin permission on '*': {change} would "
            "leave nobody able to manage clients and keys; give another client that "
            "permission first"
        )

    def _mutable(self, name: str) -> Client:
        if name in self._configured:
            raise Conflict(
                f"client {name!r} is defined in the config file; change it there and restart"
            )
        client = self._stored.get(name)
        if client is None:
            raise NotFound(f"no client named {name!r}")
        return client

    def _check_subjects(self, name: str, subjects: Sequence[str]) -> None:
        for subject in subjects:
            if not isinstance(subject, str) or not subject or len(subject) > 1024:
                raise BadRequest("certificate_subjects: names must be 1-1024 characters")
            owner = self._subjects.get(subject)
            if owner is not None and owner != name:
                raise Conflict(f"certificate subject {subject!r} already belongs to another client")

    # -- keys ------------------------------------------------------------------------

    def keys(self, client: str) -> list[ApiKey]:
        """Every key record of ``client`` (active, expired and revoked), oldest first."""
        self.get_client(client)
        found = [key for key in self._keys.values() if key.client == client]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def create_key(
        self, client: str, *, expires_at: float | None = None, key: str | None = None
    ) -> NewApiKey:
        """A new key for ``client``; the result holds the key itself, to be shown once."""
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise BadRequest("expires_at must be in the future")
        if expires_at is not None and expires_at > LATEST_EXPIRY:
            # A key whose expiry cannot be written would break every listing of its keys.
            raise BadRequest("a key must expire before the year 10000")
        async with self._lock:
            self.get_client(client)
            secret = key if key is not None else generate_key()
            record = ApiKey.create(client, secret, now=now, expires_at=expires_at)
            await self._keys.put(record.id, record)
            return NewApiKey(record=record, key=secret)

    async def revoke_key(self, client: str, key_id: str) -> ApiKey:
        """Revoke a key of ``client`` at once; ``NotFound`` for another client's key."""
        async with self._lock:
            record = self._keys.get(key_id)
            # Another client's key id gets the same answer as an unknown one.
            if record is None or record.client != client:
                raise NotFound(f"client {client!r} has no key {key_id!r}")
            if record.revoked_at is not None:
                return record
            revoked = msgspec.structs.replace(record, revoked_at=self._clock())
            await self._keys.put(key_id, revoked)
            return revoked

    # -- indexes, kept current as records are applied --------------------------------

    def _client_changed(self, name: str, client: Client | None) -> None:
        if name not in self._configured:  # a configured client shadows a stored one
            self._index_client(name, client)

    def _index_client(self, name: str, client: Client | None) -> None:
        self.generation += 1
        for subject in self._subjects_of.pop(name, ()):
            if self._subjects.get(subject) == name:
                del self._subjects[subject]
        if client is None:
            self._principals.pop(name, None)
            return
        existing = self._principals.get(name)
        # Keep the compiled principal (and its cached decisions) if nothing changed.
        if existing is None or existing.permissions != client.permissions:
            self._principals[name] = Principal(name, client.permissions)
        self._subjects_of[name] = list(client.certificate_subjects)
        for subject in client.certificate_subjects:
            owner = self._subjects.get(subject)
            if owner is None or owner == name or owner not in self._configured:
                self._subjects[subject] = name

    def _key_changed(self, key_id: str, record: ApiKey | None) -> None:
        self.generation += 1
        old = self._digest_of.pop(key_id, None)
        if old is not None:
            self._active.pop(old, None)
        if record is not None and record.revoked_at is None:
            digest = record.digest
            self._digest_of[key_id] = digest
            self._active[digest] = _ActiveKey(digest, record)
