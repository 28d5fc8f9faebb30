"""The topics pages in a browser: list, search and pages; create, alter, purge, delete;
the live tail; browsing decoded records; producing; a client that may see one topic."""

from __future__ import annotations

import base64
import json
import re
import uuid

import httpx
from playwright.sync_api import expect

from tests.console.conftest import Tab
from tests.helpers import E2E_ADMIN_KEY

AVRO = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
    }
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _produce(admin: httpx.Client, topic: str, body: object, **query: str) -> None:
    response = admin.post(f"/v2/topics/{topic}/records", json=body, params=query)
    assert response.status_code == 200, response.text


def _create(admin: httpx.Client, topic: str, partitions: int = 1) -> None:
    response = admin.post("/admin/v1/topics", json={"name": topic, "partitions": partitions})
    assert response.status_code == 201, response.text


def test_create_a_topic_then_alter_purge_and_delete_it(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("made")
    tab.sign_in(E2E_ADMIN_KEY)
    tab.page.get_by_role("button", name="Create topic").click()
    dialog = tab.page.get_by_role("dialog", name="Create a topic")
    dialog.get_by_label("Name").fill(topic)
    dialog.get_by_label("Partitions").fill("3")
    dialog.get_by_label("Retention (hours)").fill("24")
    tab.screenshot("topic-create")
    dialog.get_by_role("button", name="Create").click()
    expect(tab.page.get_by_role("heading", name=topic)).to_be_visible()
    expect(tab.page).to_have_url(re.compile(f"#/topics/{topic}$"))
    expect(tab.page.locator(".cards")).to_contain_text("1 d")
    partitions = tab.page.get_by_role("table", name="Partitions and their watermarks")
    expect(partitions.locator("tbody tr")).to_have_count(3)
    assert admin.get(f"/admin/v1/topics/{topic}").json()["retention_ms"] == 86_400_000

    # A name that exists already: the API's error, in the dialog.
    tab.page.get_by_role("link", name="Topics").first.click()
    tab.page.get_by_role("button", name="Create topic").click()
    dialog = tab.page.get_by_role("dialog", name="Create a topic")
    dialog.get_by_label("Name").fill(topic)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_role("alert")).to_contain_text("409")
    dialog.get_by_role("button", name="Cancel").click()

    tab.page.get_by_role("link", name=topic).click()
    tab.page.get_by_role("button", name="Alter").click()
    dialog = tab.page.get_by_role("dialog", name=f"Alter {topic}")
    dialog.get_by_label("Partitions").fill("4")
    dialog.get_by_role("button", name="Save").click()
    expect(partitions.locator("tbody tr")).to_have_count(4)

    _produce(admin, topic, {"value": {"type": "text", "data": "to be purged"}})
    tab.page.reload()
    expect(tab.page.locator(".cards")).to_contain_text("Records kept1")
    tab.page.get_by_role("button", name="Purge").click()
    dialog = tab.page.get_by_role("dialog", name=f"Purge {topic}?")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Purge").click()
    expect(tab.page.locator(".cards")).to_contain_text("Records kept0")

    tab.page.get_by_role("button", name="Delete").click()
    dialog = tab.page.get_by_role("dialog", name=f"Delete {topic}?")
    tab.screenshot("topic-delete-confirm")
    dialog.get_by_role("button", name="Delete").click()
    expect(tab.page.get_by_role("heading", name="Topics", exact=True)).to_be_visible()
    assert admin.get(f"/admin/v1/topics/{topic}").status_code == 404


def test_search_and_pages_of_the_topic_list(tab: Tab, admin: httpx.Client) -> None:
    stem = _name("paged")
    for i in range(52):
        _create(admin, f"{stem}-{i:02d}")
    tab.sign_in(E2E_ADMIN_KEY)
    tab.page.get_by_label("Search topics by name").fill(stem)
    tab.page.get_by_role("button", name="Search").click()
    rows = tab.page.locator("table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text(f"{stem}-00")
    # Records a second over the last minutes, for each row shown (none produced here).
    expect(rows.nth(49).locator("td").nth(2)).to_have_text("0")
    tab.screenshot("topics-list")
    tab.page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"{stem}-50")
    expect(tab.page.get_by_role("button", name="Next page")).to_be_disabled()
    tab.page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(50)
    tab.page.get_by_label("Search topics by name").fill(f"{stem}-51")
    tab.page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)


def test_a_record_produced_through_records_v2_shows_in_the_live_tail(
    tab: Tab, admin: httpx.Client
) -> None:
    topic = _name("tailed")
    _create(admin, topic, partitions=2)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.get_by_text("Live: waiting for new records")).to_be_visible()
    tail = tab.page.get_by_role("table", name=f"Live tail of {topic}")
    _produce(admin, topic, {"value": {"type": "json", "data": {"hello": "tail"}}})
    # Within a second of the produce's answer, the topic's very first record included.
    expect(tail.locator("tbody")).to_contain_text('"hello": "tail"', timeout=1000)
    for i in range(20):
        _produce(admin, topic, {"value": {"type": "text", "data": f"burst {i}"}})
    expect(tail.locator("tbody tr")).to_have_count(21)
    expect(tab.page.get_by_text("21 records received")).to_be_visible()
    tab.screenshot("topic-live-tail")


def test_browse_shows_text_json_avro_and_cloudevents_decoded(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("decoded")
    _create(admin, topic)
    _produce(admin, topic, {"value": {"type": "text", "data": "plain words"}})
    _produce(admin, topic, {"value": {"type": "json", "data": {"order": 7}}})
    _produce(
        admin,
        topic,
        {"value": {"type": "avro", "schema": AVRO, "data": {"id": 3, "item": "tea"}}},
        serializer="confluent",
    )
    _produce(
        admin,
        topic,
        {
            "headers": [
                {"name": "ce_specversion", "value": _b64("1.0")},
                {"name": "ce_type", "value": _b64("com.example.shipped")},
                {"name": "ce_source", "value": _b64("/warehouse")},
                {"name": "ce_id", "value": _b64("e-9")},
            ],
            "value": {"type": "text", "data": "parcel"},
        },
    )
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    tab.page.get_by_role("tab", name="Browse").click()
    tab.page.get_by_label("From").fill("0")
    tab.page.get_by_role("button", name="Show records").click()
    table = tab.page.get_by_role("table", name=f"Records of {topic}")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("plain words")
    # JSON pretty-printed: one member a line.
    expect(rows.nth(1).locator("pre")).to_have_text('{\n  "order": 7\n}')
    expect(rows.nth(2)).to_contain_text("Avro · schema")
    expect(rows.nth(2).locator("pre")).to_have_text('{\n  "id": 3,\n  "item": "tea"\n}')
    attributes = rows.nth(3).get_by_role("list", name="CloudEvent attributes")
    expect(attributes).to_contain_text("type: com.example.shipped")
    expect(attributes).to_contain_text("source: /warehouse")
    expect(rows.nth(3)).to_contain_text("parcel")
    tab.screenshot("topic-browse-decoded")


def test_produce_a_test_record_from_the_page(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("produced")
    _create(admin, topic)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    tab.page.get_by_role("tab", name="Produce").click()
    tab.page.get_by_label("Key").fill("k-1")
    tab.page.get_by_label("Value type").select_option("json")
    tab.page.get_by_label("Value", exact=True).fill("{not json")
    tab.page.get_by_role("button", name="Produce").click()
    expect(tab.page.get_by_role("alert")).to_contain_text("not JSON")
    tab.page.get_by_label("Value", exact=True).fill('{"made": "by hand"}')
    tab.page.get_by_role("button", name="Produce").click()
    expect(tab.page.get_by_text("Stored in partition 0 at offset 0.")).to_be_visible()
    records = admin.get(f"/admin/v1/topics/{topic}/browse").json()["records"]
    assert records[0]["key"]["text"] == "k-1"
    assert records[0]["value"]["data"] == {"made": "by hand"}


def test_a_client_that_may_see_one_topic_sees_only_that_topic(
    tab: Tab, admin: httpx.Client
) -> None:
    seen, hidden, client = _name("seen"), _name("hidden"), _name("viewer")
    _create(admin, seen)
    _create(admin, hidden)
    _produce(admin, hidden, {"value": {"type": "text", "data": "secret"}})
    made = admin.post(
        "/admin/v1/clients",
        json={"name": client, "admin": [seen], "consume": [seen], "produce": [seen]},
    )
    assert made.status_code == 201, made.text
    key = admin.post(f"/admin/v1/clients/{client}/keys", json={}).json()["key"]

    _produce(admin, seen, {"value": {"type": "text", "data": "visible"}})
    tab.sign_in(key)
    rows = tab.page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(seen)
    expect(rows.first.locator("td").nth(2)).to_have_text("<0.01")
    nav = tab.page.get_by_role("navigation", name="Console sections")
    expect(nav.get_by_role("link", name="Clients")).to_be_hidden()
    expect(nav.get_by_role("link", name="Nodes")).to_be_hidden()
    tab.screenshot("topics-one-topic-client")
    # The other topic's page: the API refuses, and the page says so.
    tab.open(f"#/topics/{hidden}")
    expect(tab.page.get_by_role("alert").first).to_contain_text("403")
    expect(tab.page.get_by_text("secret")).to_have_count(0)


def test_the_live_tail_keeps_a_bounded_window_under_a_burst(tab: Tab, admin: httpx.Client) -> None:
    """3,000 records at once: every one is counted, at most 500 rows stay in the page."""
    topic = _name("burst")
    _create(admin, topic, partitions=3)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.get_by_text("Live: waiting for new records")).to_be_visible()
    for batch in range(6):
        records = [{"value": f"burst {batch}-{i}"} for i in range(500)]
        sent = admin.post(f"/admin/v1/topics/{topic}/records", json={"records": records})
        assert sent.status_code == 200, sent.text
    expect(tab.page.get_by_text("3,000 records received")).to_be_visible(timeout=20_000)
    tail = tab.page.get_by_role("table", name=f"Live tail of {topic}")
    expect(tail.locator("tbody tr")).to_have_count(500)
