"""``sluicegate clients`` and ``keys``: offline on a data directory, and error handling."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from sluicegate.cli.clients import clients_app, keys_app, parse_duration
from sluicegate.cli.target import AdminClient, TargetError
from sluicegate.core.auth.apikeys import hash_key
from sluicegate.core.auth.clients import ClientStore
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog

cli = typer.Typer()
cli.add_typer(clients_app, name="clients")
cli.add_typer(keys_app, name="keys")
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_offline_lifecycle(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, out, err = invoke(
        "clients",
        "create",
        "orders-app",
        "--produce",
        "orders.*",
        "--produce",
        "audit",
        "--ce-source",
        "urn:shop",
        "--ce-max-deliveries",
        "5",
        "--with-key",
        *data,
    )
    assert code == 0, err
    assert "created client orders-app" in err
    assert "not shown again" in err
    key = out.strip()
    assert re.fullmatch(r"sg_[0-9A-Za-z]{43}", key)

    code, out, _ = invoke("clients", "list", *data)
    assert code == 0
    assert "orders-app" in out
    assert "orders.*, audit" in out

    code, out, err = invoke("keys", "create", "orders-app", "--expires-in", "30d", *data)
    assert code == 0, err
    second = out.strip()
    assert second != key
    assert "expires: 2" in err

    code, out, _ = invoke("clients", "show", "orders-app", *data)
    assert code == 0
    assert "produce: orders.*, audit" in out
    assert "ce_sources: urn:shop" in out
    assert "ce_max_deliveries: 5" in out
    assert out.count("active") == 2
    assert key not in out
    assert second not in out

    code, out, _ = invoke("keys", "list", "orders-app", *data)
    key_id = re.search(r"k_[0-9a-f]{12}", out)
    assert code == 0
    assert key_id is not None
    code, out, _ = invoke("keys", "revoke", "orders-app", key_id.group(0), *data)
    assert code == 0
    assert "revoked key" in out
    code, out, _ = invoke("keys", "list", "orders-app", *data)
    assert "revoked" in out

    code, _, err = invoke("clients", "update", "orders-app", "--consume", "orders.*", *data)
    assert code == 0, err
    code, out, _ = invoke("clients", "show", "orders-app", *data)
    assert "consume: orders.*" in out
    assert "produce: -" in out
    assert "ce_max_deliveries: off" in out  # replaced like the lists
    code, _, err = invoke("clients", "update", "orders-app", "--ce-max-deliveries", "1001", *data)
    assert code == 2
    assert "--ce-max-deliveries" in err

    code, _, err = invoke("clients", "delete", "orders-app", *data)
    assert code == 2
    assert "refusing to delete without --yes" in err
    code, _, _ = invoke("clients", "delete", "orders-app", "--yes", *data)
    assert code == 0
    code, _, err = invoke("clients", "show", "orders-app", *data)
    assert code == 1
    # No server answered: the in-process app's status is no part of the message.
    assert err.strip() == "error: no client named 'orders-app'"


def test_patterns_are_shown_as_they_are(tmp_path: Path) -> None:
    # Brackets of a glob are no markup: "orders.[ab]*" was shown as "orders.*", a wider
    # permission than the client has, and "[/x]" broke every listing.
    data = ["--data-dir", str(tmp_path)]
    for name, pattern in [("globby", "orders.[ab]*"), ("closing", "[/x]")]:
        code, _, err = invoke("clients", "create", name, "--produce", pattern, *data)
        assert code == 0, err
    code, out, err = invoke("clients", "show", "globby", *data)
    assert code == 0, err
    assert "orders.[ab]*" in out
    code, out, err = invoke("clients", "list", *data)
    assert code == 0, err
    assert "[/x]" in out
    assert "Traceback" not in err


def test_a_lost_admin_key_is_replaced_offline(tmp_path: Path) -> None:
    config = tmp_path / "sluicegate.toml"
    config.write_text('[[auth.clients]]\nname = "ops"\nadmin = ["*"]\n')
    # Offline commands open an existing directory only: one prepared before a first start
    # is created by hand.
    (tmp_path / "data").mkdir()
    data = ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
    code, out, _ = invoke("clients", "list", *data)
    assert code == 0
    assert "ops" in out
    assert "config" in out
    code, out, err = invoke("keys", "create", "ops", *data)
    assert code == 0, err
    key = out.strip()

    async def check() -> None:
        async with running(SqliteLog(tmp_path / "data")) as log:
            store = ClientStore(log)
            await store.load()
            record = store.find_key(hash_key(key))
            assert record is not None
            assert record.client == "ops"

    asyncio.run(check())
    code, _, err = invoke("clients", "delete", "ops", "--yes", *data)
    assert code == 1
    assert "defined in the config file" in err


def test_usage_errors(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, _, err = invoke("clients", "create", "bad name", *data)
    assert code == 1
    assert "invalid client name" in err
    code, _, err = invoke("keys", "create", "x", "--expires-in", "soon", *data)
    assert code == 2
    assert "expected a duration" in err
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[auth]\nenabled = 3\n")
    code, _, err = invoke("clients", "list", *data, "--config", str(bad_config))
    assert code == 2
    assert "configuration: " in err
    assert "Traceback" not in err


def test_expires_in_without_with_key_is_a_usage_error(tmp_path: Path) -> None:
    # Only keys expire: the option was dropped silently, leaving a client that never does.
    data = ["--data-dir", str(tmp_path)]
    code, _, err = invoke("clients", "create", "c3", "--expires-in", "15m", *data)
    assert code == 2
    assert err == "error: --expires-in applies to the key of --with-key; a client never expires\n"
    code, out, _ = invoke("clients", "list", *data)
    assert "c3" not in out
    code, _, err = invoke("clients", "create", "c3", "--expires-in", "15m", "--with-key", *data)
    assert code == 0, err
    assert "(expires: 2" in err


def test_a_name_is_one_path_segment_of_the_request(tmp_path: Path) -> None:
    # "ops?x=1" was sent as /clients/ops?x=1: the query was cut off and "ops" deleted.
    data = ["--data-dir", str(tmp_path)]
    assert invoke("clients", "create", "ops", *data)[0] == 0
    code, _, err = invoke("clients", "delete", "ops?x=1", "--yes", *data)
    assert code == 1
    assert err == "error: no client named 'ops?x=1'\n"
    code, _, err = invoke("keys", "revoke", "ops", "k#frag", *data)
    assert code == 1
    assert "'k#frag'" in err
    code, out, _ = invoke("clients", "list", *data)
    assert "ops" in out


def test_no_server(unused_tcp_port: int) -> None:
    code, _, err = invoke("clients", "list", "--url", f"http://127.0.0.1:{unused_tcp_port}")
    assert code == 1
    assert f"no sluicegate server at http://127.0.0.1:{unused_tcp_port}" in err
    assert "Traceback" not in err


async def test_server_errors_are_reported_with_hints() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "authorization" not in request.headers:
            return httpx.Response(401, json={"error": "unauthenticated", "message": "no creds"})
        return httpx.Response(500, text="oops")

    transport = httpx.MockTransport(handler)
    api = AdminClient("http://gw", None, transport=transport)
    with pytest.raises(
        TargetError, match=r"no creds \(HTTP 401; pass --key or set SLUICEGATE_KEY\)"
    ):
        await api.call("GET", "/clients")
    await api.aclose()
    api = AdminClient("http://gw", "sg_key", transport=transport)
    with pytest.raises(TargetError, match=r"oops \(HTTP 500\)"):
        await api.call("GET", "/clients")
    await api.aclose()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("30d", 2592000),
        ("2w", 1209600),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "5y", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)
