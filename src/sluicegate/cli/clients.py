"""``sluicegate clients`` and ``sluicegate keys``: manage who may use the gateway.

Both talk to a running server's admin API (``--url``, ``--key``), or, with
``--data-dir``, open a stopped server's log directly — the way to create the first
clients before a start, or a new admin key when the old one is lost.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sluicegate.cli.options import (
    DEFAULT_URL,
    ClientName,
    ConfigFile,
    DataDir,
    Key,
    KeyId,
    NewClientName,
    Url,
    Yes,
    usage_error,
)
from sluicegate.cli.output import emphasized, err, out
from sluicegate.cli.target import confirm_deletion, open_target, run_command, segment

__all__ = ["clients_app", "keys_app"]

clients_app = typer.Typer(
    help="Create, list, show, change and delete clients.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys.", no_args_is_help=True, rich_markup_mode="markdown"
)


# -- talking to the admin API ----------------------------------------------------------


def _request(
    method: str,
    path: str,
    body: Any,
    url: str,
    key: str | None,
    data_dir: str | None,
    config: Path | None,
) -> Any:
    async def go() -> Any:
        async with open_target(url, key, data_dir, config) as api:
            return await api.call(method, f"/clients{path}", json=body)

    return run_command(go())


def _list_all(
    path: str, url: str, key: str | None, data_dir: str | None, config: Path | None
) -> list[dict[str, Any]]:
    """Every page of the list at ``/clients<path>``."""

    async def go() -> list[dict[str, Any]]:
        async with open_target(url, key, data_dir, config) as api:
            return await api.list_all(f"/clients{path}")

    result: list[dict[str, Any]] = run_command(go())
    return result


# -- durations -------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w`` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"expected a duration such as 3600, 15m, 12h, 30d; got {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


ExpiresIn = Annotated[
    str | None,
    typer.Option(help="The key stops working after this long: 3600, 15m, 12h, 30d, 2w."),
]


def _show_new_key(created: dict[str, Any]) -> None:
    # The key alone on stdout, so `KEY=$(sluicegate keys create app)` works; the rest on stderr.
    expires = created["expires_at"] or "never"
    err.print(
        emphasized(
            "API key ",
            created["id"],
            " for client ",
            created["client"],
            f" (expires: {expires}). Store it now: it is not shown again.",
        ),
        soft_wrap=True,
    )
    out.out(created["key"])


# -- clients ---------------------------------------------------------------------------


def _client_body(
    produce: list[str] | None,
    consume: list[str] | None,
    admin: list[str] | None,
    ce_source: list[str] | None,
    ce_produce_type: list[str] | None,
    ce_consume_type: list[str] | None,
    certificate_subject: list[str] | None,
    ce_max_deliveries: int,
) -> dict[str, Any]:
    return {
        "produce": produce or [],
        "consume": consume or [],
        "admin": admin or [],
        "ce_sources": ce_source or [],
        "ce_produce_types": ce_produce_type or [],
        "ce_consume_types": ce_consume_type or [],
        "certificate_subjects": certificate_subject or [],
        "ce_max_deliveries": ce_max_deliveries,
    }


ProduceOpt = Annotated[
    list[str] | None,
    typer.Option("--produce", help="Topic (or glob such as 'orders.*') it may produce to."),
]
ConsumeOpt = Annotated[
    list[str] | None, typer.Option("--consume", help="Topic or glob it may consume from.")
]
AdminOpt = Annotated[
    list[str] | None,
    typer.Option("--admin", help="Topic or glob it administers ('*': everything, incl. clients)."),
]
CeSourceOpt = Annotated[
    list[str] | None, typer.Option("--ce-source", help="CloudEvents source it may produce with.")
]
CeProduceTypeOpt = Annotated[
    list[str] | None, typer.Option("--ce-produce-type", help="CloudEvents type it may produce.")
]
CeConsumeTypeOpt = Annotated[
    list[str] | None, typer.Option("--ce-consume-type", help="CloudEvents type it receives.")
]
CeMaxDeliveriesOpt = Annotated[
    int,
    typer.Option(
        "--ce-max-deliveries",
        min=0,
        max=1000,
        help="Deliveries after which an unconfirmed CloudEvent goes to its dead stream (0: off).",
    ),
]
SubjectOpt = Annotated[
    list[str] | None,
    typer.Option("--certificate-subject", help="TLS client certificate CN or SAN mapped to it."),
]


@clients_app.command("create")
def create_client(
    name: NewClientName,
    produce: ProduceOpt = None,
    consume: ConsumeOpt = None,
    admin: AdminOpt = None,
    ce_source: CeSourceOpt = None,
    ce_produce_type: CeProduceTypeOpt = None,
    ce_consume_type: CeConsumeTypeOpt = None,
    certificate_subject: SubjectOpt = None,
    ce_max_deliveries: CeMaxDeliveriesOpt = 0,
    with_key: Annotated[
        bool, typer.Option("--with-key", help="Also create an API key and print it.")
    ] = False,
    expires_in: ExpiresIn = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Create a client with permissions (repeat an option for several patterns)."""
    body: dict[str, Any] = {
        "name": name,
        **_client_body(
            produce,
            consume,
            admin,
            ce_source,
            ce_produce_type,
            ce_consume_type,
            certificate_subject,
            ce_max_deliveries,
        ),
    }
    if expires_in is not None and not with_key:
        # A client never expires, only its keys: dropping the option would leave the
        # operator believing the access they granted runs out.
        raise usage_error("--expires-in applies to the key of --with-key; a client never expires")
    key_body = {"expires_in": parse_duration(expires_in)} if expires_in else {}

    async def go() -> tuple[dict[str, Any], dict[str, Any] | None]:
        async with open_target(url, key, data_dir, config) as api:
            client = await api.call("POST", "/clients", json=body)
            created = (
                await api.call("POST", f"/clients/{segment(name)}/keys", json=key_body)
                if with_key
                else None
            )
            return client, created

    client, created = run_command(go())
    console = err if created else out
    console.print(emphasized("created client ", client["name"]))
    if created:
        _show_new_key(created)


@clients_app.command("update")
def update_client(
    name: ClientName,
    produce: ProduceOpt = None,
    consume: ConsumeOpt = None,
    admin: AdminOpt = None,
    ce_source: CeSourceOpt = None,
    ce_produce_type: CeProduceTypeOpt = None,
    ce_consume_type: CeConsumeTypeOpt = None,
    certificate_subject: SubjectOpt = None,
    ce_max_deliveries: CeMaxDeliveriesOpt = 0,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Replace a client's permissions with the ones given (omitted lists become empty,
    an omitted ``--ce-max-deliveries`` 0)."""
    body = _client_body(
        produce,
        consume,
        admin,
        ce_source,
        ce_produce_type,
        ce_consume_type,
        certificate_subject,
        ce_max_deliveries,
    )
    _request("PUT", f"/{segment(name)}", body, url, key, data_dir, config)
    out.print(emphasized("updated client ", name))


def _joined(values: list[str]) -> str:
    return ", ".join(values) if values else "-"


@clients_app.command("list")
def list_clients(
    url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = None, config: ConfigFile = None
) -> None:
    """List clients and what they may do."""
    clients = _list_all("", url, key, data_dir, config)
    table = Table("name", "origin", "produce", "consume", "admin", "cloudevents", "keys")
    for client in clients:
        ce = client["ce_sources"] or client["ce_produce_types"] or client["ce_consume_types"]
        table.add_row(
            client["name"],
            client["origin"],
            _joined(client["produce"]),
            _joined(client["consume"]),
            _joined(client["admin"]),
            "yes" if ce else "-",
            str(client["active_keys"]),
        )
    out.print(table)


def _minute(timestamp: str | None, empty: str) -> str:
    # RFC 3339 to the minute is plenty in a table and keeps the key ids from wrapping.
    return timestamp[:16].replace("T", " ") if timestamp else empty


def _keys_table(keys: list[dict[str, Any]]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=14)
    table.add_column("prefix", no_wrap=True)
    for name in ("status", "created", "expires", "revoked"):
        table.add_column(name)
    for k in keys:
        table.add_row(
            k["id"],
            k["prefix"] + "…",
            k["status"],
            _minute(k["created_at"], "-"),
            _minute(k["expires_at"], "never"),
            _minute(k["revoked_at"], "-"),
        )
    return table


@clients_app.command("show")
def show_client(
    name: ClientName,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Show a client's permissions and keys."""

    async def go() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with open_target(url, key, data_dir, config) as api:
            path = f"/clients/{segment(name)}"
            return await api.call("GET", path), await api.list_all(f"{path}/keys")

    client, keys = run_command(go())
    for field in ("name", "origin", "created_at"):
        out.print(f"{field:>20}: {client[field] or '-'}")
    for field in (
        "produce",
        "consume",
        "admin",
        "ce_sources",
        "ce_produce_types",
        "ce_consume_types",
        "certificate_subjects",
    ):
        out.print(f"{field:>20}: {_joined(client[field])}")
    out.print(f"{'ce_max_deliveries':>20}: {client['ce_max_deliveries'] or 'off'}")
    out.print(_keys_table(keys))


@clients_app.command("delete")
def delete_client(
    name: ClientName,
    yes: Yes = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Delete a client and every API key it has."""
    confirm_deletion(f"Delete client {name!r} and all its API keys?", yes)
    _request("DELETE", f"/{segment(name)}", None, url, key, data_dir, config)
    out.print(emphasized("deleted client ", name))


# -- keys ------------------------------------------------------------------------------


@keys_app.command("create")
def create_key(
    client: ClientName,
    expires_in: ExpiresIn = None,
    expires_at: Annotated[
        str | None, typer.Option(help="The key stops working at this RFC 3339 time.")
    ] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Create an API key for a client; prints the key (only this once) on stdout."""
    body: dict[str, Any] = {}
    if expires_in is not None:
        body["expires_in"] = parse_duration(expires_in)
    if expires_at is not None:
        body["expires_at"] = expires_at
    _show_new_key(_request("POST", f"/{segment(client)}/keys", body, url, key, data_dir, config))


@keys_app.command("list")
def list_keys(
    client: ClientName,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """List a client's API keys (never the keys themselves)."""
    out.print(_keys_table(_list_all(f"/{segment(client)}/keys", url, key, data_dir, config)))


@keys_app.command("revoke")
def revoke_key(
    client: ClientName,
    key_id: KeyId,
    url: Url = DEFAULT_URL,
    key: Key = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Revoke an API key at once."""
    _request(
        "DELETE", f"/{segment(client)}/keys/{segment(key_id)}", None, url, key, data_dir, config
    )
    out.print(emphasized("revoked key ", key_id, " of client ", client))
