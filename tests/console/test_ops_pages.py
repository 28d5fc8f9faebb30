"""The console's operations pages in a real browser, against a real server on each
backend: consumers and lag, schemas, clients and keys, nodes and health.

Each test sets up through the APIs a program would use (an admin ``httpx`` client), acts
in the page as a person would (labels, roles, buttons), and checks the outcome through
the API again where the page changed something (a revoked key is refused afterwards).
Names are unique per test: the server is shared by the module.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect

from sluicegate.core.schemas.compatibility import CompatibilityLevel
from sluicegate.testing.process import ServerProcess
from tests.conftest import commit_markers
from tests.console.conftest import PHONE, Tab
from tests.helpers import E2E_ADMIN_KEY

#: The gateway takes the group figures again at most every 5 s; the page looks every 3 s.
LAG_TIMEOUT_MS = 20_000


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _key_for(admin: httpx.Client, name: str, **permissions: list[str]) -> str:
    created = admin.post("/admin/v1/clients", json={"name": name, **permissions})
    assert created.status_code == 201, created.text
    key = admin.post(f"/admin/v1/clients/{name}/keys", json={})
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def _events(source: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": f"{source}-{n}",
            "source": source,
            "type": "Console.Tested",
            "data": {"n": n},
        }
        for n in range(count)
    ]


def test_a_consumer_groups_lag_falls_as_its_consumer_reads(
    tab: Tab, admin: httpx.Client, console_server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    # On Kafka the batch's transaction marker after its last record counts in the lag.
    behind = 5 + commit_markers(request.node.callspec.params["console_server"])
    source = f"urn:{_name('console')}"
    producer = _key_for(admin, _name("shop"), ce_sources=[source], ce_produce_types=["Console.*"])
    reader = _name("billing")
    reader_key = _key_for(admin, reader, ce_consume_types=["Console.*"])
    consumer = {"authorization": f"Bearer {reader_key}"}
    produce_headers = {
        "authorization": f"Bearer {producer}",
        "content-type": "application/cloudevents-batch+json",
    }
    with httpx.Client(base_url=console_server.url, timeout=30) as http:

        def produce(events: list[dict[str, Any]]) -> None:
            produced = http.post(
                "/ce/produce/events", content=json.dumps(events), headers=produce_headers
            )
            assert produced.status_code == 202, produced.text

        # One event makes the type (and its topic) known; the consumer reads and confirms
        # it, so the group has read the topic and committed a position in it.
        events = _events(source, 6)
        produce(events[:1])
        created = http.post("/ce/consumers", params={"group": "invoices"}, headers=consumer)
        assert created.status_code == 201, created.text
        instance = created.headers["location"]
        first = http.get(f"{instance}/events", params={"timeout": "5"}, headers=consumer)
        assert len(first.json()) == 1, first.text
        assert http.post(f"{instance}/confirm", headers=consumer).status_code in (200, 204)
        produce(events[1:])

        group = f"ce/{reader}/invoices"
        tab.sign_in(E2E_ADMIN_KEY)
        tab.open(f"#/consumers?group={quote(group, safe='')}")
        expect(tab.page.get_by_role("heading", name=f"Group {group}")).to_be_visible()
        lag = tab.page.locator("#group-lag")
        expect(lag).to_have_text(str(behind), timeout=LAG_TIMEOUT_MS)
        # The instance is listed with its client, node and kind.
        instances = tab.page.get_by_role("table", name=re.compile("consumer instances"))
        row = instances.get_by_role("row").filter(has_text=reader)
        expect(row).to_contain_text("long poll")
        tab.screenshot("consumers-group-lagging")

        read = http.get(f"{instance}/events", params={"timeout": "5"}, headers=consumer)
        assert read.status_code == 200, read.text
        assert len(read.json()) == 5
        confirmed = http.post(f"{instance}/confirm", headers=consumer)
        assert confirmed.status_code in (200, 204), confirmed.text
        expect(lag).to_have_text("0", timeout=LAG_TIMEOUT_MS)
        tab.screenshot("consumers-group-caught-up")

        tab.open("#/consumers")
        expect(tab.page.get_by_role("link", name=group).first).to_be_visible()
        expect(tab.page.get_by_text("cursors are stateless")).to_be_visible()
        tab.screenshot("consumers")


def test_create_a_client_and_a_key_then_revoke_the_key(
    tab: Tab, admin: httpx.Client, console_server: ServerProcess
) -> None:
    name = _name("made")
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open("#/clients")
    expect(tab.page.get_by_role("heading", name="Clients and keys")).to_be_visible()
    tab.screenshot("clients")
    tab.page.get_by_label("Name", exact=True).fill(name)
    tab.page.get_by_label("Produce to topics").fill("orders.*, audit")
    tab.page.get_by_label("Consume from topics").fill("orders.*")
    tab.page.get_by_role("button", name="Create client").click()
    expect(tab.page.get_by_role("heading", name=f"Client {name}")).to_be_visible()
    made = admin.get(f"/admin/v1/clients/{name}").json()
    assert made["produce"] == ["orders.*", "audit"]
    assert (made["consume"], made["admin"]) == (["orders.*"], [])

    tab.page.get_by_role("button", name="Create key").click()
    secret = tab.page.locator("#new-key")
    expect(secret).to_have_text(re.compile(r"\S{20,}"))
    key = secret.inner_text()
    tab.page.get_by_role("button", name="Copy key").click()
    expect(tab.page.get_by_role("status")).to_have_text("Key copied")
    tab.screenshot("clients-new-key")
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=console_server.url, timeout=30) as http:
        assert http.get("/admin/v1/topics", headers=headers).status_code == 200

        key_id = admin.get(f"/admin/v1/clients/{name}/keys").json()[0]["id"]
        tab.page.get_by_role("button", name=f"Revoke key {key_id}").click()
        dialog = tab.page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Revoke key {key_id}?")
        dialog.get_by_role("button", name="Revoke key").click()
        expect(tab.page.locator(f'tr[data-key="{key_id}"]')).to_contain_text("revoked")
        tab.screenshot("clients-key-revoked")
        refused = http.get("/admin/v1/topics", headers=headers)
        assert refused.status_code == 401, refused.text


def test_a_client_name_the_api_refuses_shows_its_error(tab: Tab) -> None:
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open("#/clients")
    name = tab.page.get_by_label("Name", exact=True)
    # The browser's own check is bypassed: the API's answer is what is shown.
    name.evaluate("input => input.removeAttribute('pattern')")
    name.fill("-starts-with-a-dash")
    tab.page.get_by_role("button", name="Create client").click()
    expect(tab.page.get_by_role("alert")).to_contain_text("400")


def test_schema_versions_a_diff_and_the_compatibility_level(tab: Tab, admin: httpx.Client) -> None:
    subject = f"{_name('orders')}-value"
    fields: list[dict[str, Any]] = [{"name": "id", "type": "long"}]
    for extra in ("note", "total"):
        fields = [*fields, {"name": extra, "type": ["null", "string"], "default": None}]
        schema = {"type": "record", "name": "Order", "fields": fields}
        registered = admin.post(
            f"/subjects/{subject}/versions", json={"schema": json.dumps(schema)}
        )
        assert registered.status_code == 200, registered.text

    tab.sign_in(E2E_ADMIN_KEY)
    tab.open("#/schemas")
    tab.page.get_by_label("Filter subjects").fill(subject[:14])
    tab.page.get_by_role("link", name=subject).click()
    expect(tab.page.get_by_role("heading", name=subject)).to_be_visible()
    expect(tab.page.locator("pre.schema")).to_contain_text('"total"')
    tab.page.get_by_label("Version", exact=True).select_option("1")
    expect(tab.page.locator("pre.schema")).not_to_contain_text('"total"')
    tab.screenshot("schemas-version")

    tab.page.get_by_label("From").select_option("1")
    tab.page.get_by_label("To").select_option("2")
    tab.page.get_by_role("button", name="Compare").click()
    expect(tab.page.locator("#diff-summary")).to_contain_text("Version 1 → 2")
    added = tab.page.locator("table.diff tr.added")
    expect(added.filter(has_text='"total"')).to_have_count(1)
    # What both versions hold is no change: "note" is in neither added nor removed lines.
    changed = tab.page.locator("table.diff tr.added, table.diff tr.removed")
    expect(changed.filter(has_text='"note"')).to_have_count(0)
    expect(tab.page.locator("table.diff tr").filter(has_text='"note"')).to_have_count(1)
    tab.screenshot("schemas-diff")

    expect(tab.page.locator("#level-note")).to_have_text("Inherited from the global default.")
    # The picker offers the levels the registry takes, as its OpenAPI document lists them.
    options = tab.page.get_by_label("Compatibility level", exact=True).locator("option")
    expect(options).to_have_text([level.value for level in CompatibilityLevel])
    tab.page.get_by_label("Compatibility level", exact=True).select_option("FULL")
    tab.page.get_by_role("button", name="Save level").click()
    expect(tab.page.locator("#level-note")).to_have_text("Set on this subject.")
    assert admin.get(f"/config/{subject}").json()["compatibilityLevel"] == "FULL"


def test_nodes_readiness_and_charts(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("charted")
    assert admin.post("/admin/v1/topics", json={"name": topic}).status_code == 201
    for _ in range(5):
        produced = admin.post(
            f"/v2/topics/{topic}/records", json={"value": {"type": "text", "data": "x"}}
        )
        assert produced.status_code == 200, produced.text
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open("#/nodes")
    expect(tab.page.locator("#readiness")).to_have_text("Ready: ready")
    nodes = tab.page.get_by_role("table", name="Nodes")
    expect(nodes.get_by_role("row")).to_have_count(2)  # the header and the one node
    expect(nodes).to_contain_text("this node")
    for chart in ("rate", "latency", "storage"):
        expect(tab.page.locator(f"#chart-{chart} canvas")).to_be_visible()
    # Samples are taken every 5 s: the produce rate of the records above shows.
    expect(tab.page.locator("#chart-rate-summary")).to_contain_text(
        re.compile(r"\(highest (?!none|0 )[0-9.]+ records/s\)"), timeout=15_000
    )
    tab.screenshot("nodes")


def test_the_pages_fit_a_phone(tab: Tab) -> None:
    tab.page.set_viewport_size(PHONE)
    tab.sign_in(E2E_ADMIN_KEY)
    for page, heading in (
        ("consumers", "Consumers"),
        ("schemas", "Schemas"),
        ("clients", "Clients and keys"),
        ("nodes", "Nodes and health"),
    ):
        tab.open(f"#/{page}")
        expect(tab.page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (page, width)
        tab.screenshot(f"{page}-phone")
