"""ClientStore on the real SQLite log: clients, keys, indexes, persistence, bootstrap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.config import ClientSettings
from sluicegate.core.auth.apikeys import hash_key
from sluicegate.core.auth.certificates import PeerCertificate
from sluicegate.core.auth.clients import Bootstrap, ClientStore, first_start_message
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.records import NewRecord
from sluicegate.core.topics import INTERNAL_PREFIX
from sluicegate.errors import BadRequest, ConfigError, Conflict, NotFound, Unauthenticated
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog
from tests.helpers import eventually

CONFIGURED = [
    ClientSettings(name="ops", admin=["*"], certificate_subjects=["ops.example.com"]),
]


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


@pytest.fixture
async def store(log: Log) -> ClientStore:
    store = ClientStore(log, CONFIGURED)
    await store.load()
    return store


async def test_create_list_get_update_delete(store: ClientStore) -> None:
    created = await store.create_client("orders-app", Permissions(produce=["orders.*"]))
    assert created.origin == "api"
    assert created.created_at > 0
    assert [c.name for c in store.clients()] == ["ops", "orders-app"]
    assert store.get_client("orders-app").permissions.produce == ["orders.*"]
    principal = store.principal("orders-app")
    assert principal is not None
    assert principal.allows("produce", "orders.eu")

    await store.update_client("orders-app", Permissions(consume=["orders.*"]))
    updated = store.principal("orders-app")
    assert updated is not None
    assert not updated.allows("produce", "orders.eu")
    assert updated.allows("consume", "orders.eu")
    assert store.get_client("orders-app").created_at == created.created_at

    await store.delete_client("orders-app")
    assert store.principal("orders-app") is None
    with pytest.raises(NotFound, match="no client named 'orders-app'"):
        store.get_client("orders-app")


async def test_unchanged_permissions_keep_the_compiled_principal(store: ClientStore) -> None:
    await store.create_client("a", Permissions(produce=["x.*"]))
    before = store.principal("a")
    await store.update_client("a", Permissions(produce=["x.*"]), ["a.example.com"])
    assert store.principal("a") is before


async def test_conflicts_and_validation(store: ClientStore) -> None:
    await store.create_client("a", Permissions(), ["a.example.com"])
    with pytest.raises(Conflict, match="already exists"):
        await store.create_client("a", Permissions())
    with pytest.raises(Conflict, match="already exists"):
        await store.create_client("ops", Permissions())
    with pytest.raises(Conflict, match="already belongs to another client"):
        await store.create_client("b", Permissions(), ["a.example.com"])
    with pytest.raises(Conflict, match="already belongs to another client"):
        await store.create_client("b", Permissions(), ["ops.example.com"])
    with pytest.raises(BadRequest, match="invalid client name"):
        await store.create_client("no spaces", Permissions())
    with pytest.raises(BadRequest, match=r"^produce: "):
        await store.create_client("c", Permissions(produce=[""]))
    with pytest.raises(NotFound):
        await store.update_client("nobody", Permissions())
    with pytest.raises(NotFound):
        await store.delete_client("nobody")


async def test_configured_clients_are_read_only(store: ClientStore) -> None:
    assert store.get_client("ops").origin == "config"
    ops = store.principal("ops")
    assert ops is not None
    assert ops.is_admin
    with pytest.raises(Conflict, match="defined in the config file"):
        await store.update_client("ops", Permissions())
    with pytest.raises(Conflict, match="defined in the config file"):
        await store.delete_client("ops")
    # Keys of configured clients are managed at run time like any other.
    created = await store.create_key("ops")
    assert store.find_key(hash_key(created.key)) == created.record


async def test_keys_lifecycle(store: ClientStore) -> None:
    await store.create_client("a", Permissions(produce=["t"]))
    first = await store.create_key("a")
    second = await store.create_key("a", expires_at=store._clock() + 3600)
    assert first.key != second.key
    assert store.find_key(hash_key(first.key)) == first.record
    assert store.find_key(hash_key("sg_" + "0" * 43)) is None
    assert [k.id for k in store.keys("a")] == [first.record.id, second.record.id]

    revoked = await store.revoke_key("a", first.record.id)
    assert revoked.revoked_at is not None
    assert store.find_key(hash_key(first.key)) is None
    assert store.keys("a")[0].status(store._clock()) == "revoked"
    assert await store.revoke_key("a", first.record.id) == revoked  # idempotent

    with pytest.raises(NotFound):
        await store.revoke_key("a", "k_nope")
    with pytest.raises(NotFound, match="no client named"):
        await store.create_key("nobody")
    with pytest.raises(BadRequest, match="future"):
        await store.create_key("a", expires_at=1.0)
    with pytest.raises(BadRequest, match="before the year 10000"):
        await store.create_key("a", expires_at=1e19)


async def test_another_clients_key_is_not_found(store: ClientStore) -> None:
    await store.create_client("a", Permissions())
    await store.create_client("b", Permissions())
    key_of_a = await store.create_key("a")
    with pytest.raises(NotFound, match="client 'b' has no key"):
        await store.revoke_key("b", key_of_a.record.id)
    assert store.find_key(hash_key(key_of_a.key)) is not None


async def test_deleting_a_client_deletes_its_keys(store: ClientStore) -> None:
    await store.create_client("a", Permissions())
    created = await store.create_key("a")
    await store.delete_client("a")
    assert store.find_key(hash_key(created.key)) is None
    # The same name again starts with no keys.
    await store.create_client("a", Permissions())
    assert store.keys("a") == []


async def test_certificate_identities(store: ClientStore) -> None:
    await store.create_client("svc", Permissions(), ["svc.example.com", "svc-cn"])
    by_cn = PeerCertificate(common_name="svc-cn", alt_names=("other.example.com",))
    assert store.client_for_certificate(by_cn) == "svc"
    by_san = PeerCertificate(common_name="unknown", alt_names=("svc.example.com",))
    assert store.client_for_certificate(by_san) == "svc"
    assert store.client_for_certificate(PeerCertificate(common_name="ops.example.com")) == "ops"
    assert store.client_for_certificate(PeerCertificate(common_name="stranger")) is None
    both = PeerCertificate(common_name="svc-cn", alt_names=("ops.example.com",))
    with pytest.raises(Unauthenticated, match="more than one client"):
        store.client_for_certificate(both)
    await store.update_client("svc", Permissions(), ["svc-2"])
    assert store.client_for_certificate(by_san) is None


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        store = ClientStore(log)
        await store.load()
        await store.create_client("a", Permissions(produce=["t.*"]), ["a.example.com"])
        kept = await store.create_key("a")
        dropped = await store.create_key("a")
        await store.revoke_key("a", dropped.record.id)
    async with running(SqliteLog(tmp_path)) as log:
        store = ClientStore(log)
        await store.load()
        principal = store.principal("a")
        assert principal is not None
        assert principal.allows("produce", "t.1")
        assert store.find_key(hash_key(kept.key)) == kept.record
        assert store.find_key(hash_key(dropped.key)) is None
        assert store.client_for_certificate(PeerCertificate(common_name="a.example.com")) == "a"


async def test_another_node_sees_changes_by_following(log: Log) -> None:
    writer, follower = ClientStore(log), ClientStore(log)
    await writer.load()
    await follower.load()
    following = asyncio.create_task(follower.follow())
    try:
        await writer.create_client("late", Permissions(consume=["x"]))
        created = await writer.create_key("late")
        await eventually(
            lambda: follower.find_key(hash_key(created.key)) is not None,
            "the follower knows the key",
            timeout=5,
        )
        assert follower.principal("late") is not None
        await writer.revoke_key("late", created.record.id)
        await eventually(
            lambda: follower.find_key(hash_key(created.key)) is None,
            "the follower forgot the key",
            timeout=5,
        )
    finally:
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following


# -- first start ---------------------------------------------------------------------


async def test_bootstrap_creates_admin_with_a_generated_key(log: Log) -> None:
    store = ClientStore(log)
    await store.load()
    result = await store.bootstrap_admin()
    assert result is not None
    assert result.client == "admin"
    assert result.key is not None
    assert result.key not in repr(result)
    admin = store.principal("admin")
    assert admin is not None
    assert admin.is_admin
    assert admin.allows("produce", "anything")
    assert store.find_key(hash_key(result.key)) is not None
    assert await store.bootstrap_admin() is None  # only on the first start
    message = first_start_message(result, "http://127.0.0.1:8080")
    assert result.key in message
    assert "sluicegate clients create" in message
    assert "sluicegate keys create" in message


async def test_bootstrap_with_the_admin_key_from_the_environment(log: Log) -> None:
    store = ClientStore(log)
    await store.load()
    chosen = "my-operator-chosen-admin-key-0123456789"
    result = await store.bootstrap_admin(chosen)
    assert result == Bootstrap(client="admin", key=None)
    record = store.find_key(hash_key(chosen))
    assert record is not None
    assert record.client == "admin"
    message = first_start_message(result, "http://127.0.0.1:8080")
    assert chosen not in message
    assert "$SLUICEGATE_ADMIN_KEY" in message


async def test_bootstrap_refuses_a_weak_admin_key(log: Log) -> None:
    store = ClientStore(log)
    await store.load()
    with pytest.raises(ConfigError) as caught:
        await store.bootstrap_admin("short")
    assert caught.value.key == "SLUICEGATE_ADMIN_KEY"
    assert "short" not in caught.value.message
    assert store.clients() == []


async def test_no_bootstrap_when_clients_are_configured(log: Log) -> None:
    store = ClientStore(log, CONFIGURED)
    await store.load()
    assert await store.bootstrap_admin() is None
    assert [c.name for c in store.clients()] == ["ops"]


@pytest.mark.parametrize(
    ("extra_keys", "said"), [(0, "1 API key does (of"), (1, "2 API keys do (of")]
)
async def test_no_bootstrap_but_a_warning_when_keys_outlived_their_clients(
    log: Log, caplog: pytest.LogCaptureFixture, extra_keys: int, said: str
) -> None:
    store = ClientStore(log)
    await store.load()
    first = await store.bootstrap_admin()
    assert first is not None
    assert first.key is not None
    for _ in range(extra_keys):
        await store.create_key("admin")
    # The clients' records lost, the keys' kept (as when only the clients' internal
    # topic was deleted): a tombstone written to that topic alone.
    await log.append([NewRecord(f"{INTERNAL_PREFIX}_clients", 0, b"admin", None)])
    restarted = ClientStore(log)
    await restarted.load()
    assert restarted.clients() == []
    assert restarted.find_key(hash_key(first.key)) is not None  # a key of no client
    assert await restarted.bootstrap_admin() is None
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"no client exists, but {said} clients removed" in warning
    assert "sluicegate clients create <name> --admin '*' --with-key" in warning


async def test_nodes_started_together_on_an_empty_log_make_one_admin_key(log: Log) -> None:
    stores = [ClientStore(log) for _ in range(3)]
    for store in stores:
        await store.load()
    results = await asyncio.gather(*(store.bootstrap_admin() for store in stores))
    made = [result for result in results if result is not None]
    assert len(made) == 1
    replayed = ClientStore(log)
    await replayed.load()
    assert [client.name for client in replayed.clients()] == ["admin"]
    [key] = replayed.keys("admin")
    assert made[0].key is not None
    assert replayed.find_key(hash_key(made[0].key)) == key


async def test_the_last_client_that_administers_everything_stays(log: Log) -> None:
    # Deleted or demoted, nobody could manage clients and keys through the API, and a
    # restart does not make an admin again while any client exists.
    store = ClientStore(log, [])
    await store.load()
    await store.create_client("root", Permissions(admin=["*"]))
    await store.create_client("app", Permissions(produce=["*"], admin=["orders.*"]))
    with pytest.raises(Conflict, match="last with the admin permission on '\\*'"):
        await store.delete_client("root")
    with pytest.raises(Conflict, match="taking its admin permission"):
        await store.update_client("root", Permissions(admin=["orders.*"]))
    assert store.get_client("root").permissions.admin == ["*"]
    await store.delete_client("app")  # not an administrator of everything: no guard
    await store.create_client("second", Permissions(admin=["*"]))
    await store.delete_client("root")  # another one is left
    with pytest.raises(Conflict):
        await store.delete_client("second")
