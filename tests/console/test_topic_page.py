"""The topic pages against what an outside probe found: browse pages that end, records
shown as stored (no JavaScript number in between), produce sending what was typed, a live
tail that follows a growing, paused or re-made topic and stops on a refusal, figures that
stay fresh, alter sending only what changed, and the shell's smaller slips."""

from __future__ import annotations

import base64
import json
import re
import uuid

import httpx
from playwright.sync_api import expect

from tests.console.conftest import Tab
from tests.helpers import E2E_ADMIN_KEY

AVRO_LONG = json.dumps({"type": "record", "name": "Big", "fields": [{"name": "n", "type": "long"}]})


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _create(admin: httpx.Client, topic: str, partitions: int = 1, **more: object) -> None:
    body = {"name": topic, "partitions": partitions, **more}
    response = admin.post("/admin/v1/topics", json=body)
    assert response.status_code == 201, response.text


def _produce_raw(admin: httpx.Client, topic: str, body: str, **query: str) -> None:
    response = admin.post(
        f"/v2/topics/{topic}/records",
        content=body,
        params=query,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def _batch(admin: httpx.Client, topic: str, records: list[dict[str, object]]) -> None:
    sent = admin.post(f"/admin/v1/topics/{topic}/records", json={"records": records})
    assert sent.status_code == 200, sent.text


def _browse(tab: Tab, topic: str) -> None:
    tab.page.get_by_role("tab", name="Browse").click()
    tab.page.get_by_role("button", name="Show records").click()


def test_browse_pages_of_records_sharing_a_timestamp_end_without_repeats(
    tab: Tab, admin: httpx.Client
) -> None:
    topic = _name("sametime")
    _create(admin, topic, partitions=3)
    _batch(admin, topic, [{"value": f"r{i}", "key": f"k{i}"} for i in range(120)])
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    _browse(tab, topic)
    rows = tab.page.get_by_role("table", name=f"Records of {topic}").locator("tbody tr")
    expect(rows).to_have_count(50)
    more = tab.page.get_by_role("button", name="Next page")
    more.click()
    expect(rows).to_have_count(100)
    more.click()
    expect(rows).to_have_count(120)
    expect(more).to_be_hidden()
    seen = rows.evaluate_all("rows => rows.map(r => r.dataset.partition + ':' + r.dataset.offset)")
    assert len(set(seen)) == 120


def test_records_are_shown_exactly_as_stored(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("exact")
    _create(admin, topic)
    for text in ("1e5", "1.50", "-0", " 42", "9007199254740993"):
        _produce_raw(admin, topic, json.dumps({"value": {"type": "text", "data": text}}))
    _produce_raw(
        admin,
        topic,
        '{"value": {"type": "json", "data": {"big": 123456789012345678901, "price": 1.10}}}',
    )
    _produce_raw(
        admin,
        topic,
        json.dumps({"value": {"type": "avro", "schema": AVRO_LONG, "data": {"n": 0}}}).replace(
            '"n": 0', '"n": 9007199254740993'
        ),
        serializer="confluent",
    )
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    _browse(tab, topic)
    rows = tab.page.get_by_role("table", name=f"Records of {topic}").locator("tbody tr")
    expect(rows).to_have_count(7)
    values = rows.locator("td.value")
    for index, text in enumerate(("1e5", "1.50", "-0", " 42", "9007199254740993")):
        expect(values.nth(index)).to_have_text(text)
    expect(values.nth(5).locator("pre")).to_have_text(
        '{\n  "big": 123456789012345678901,\n  "price": 1.10\n}'
    )
    expect(values.nth(6).locator("pre")).to_have_text('{\n  "n": 9007199254740993\n}')


def test_produce_sends_json_as_typed(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("typed")
    _create(admin, topic)
    typed = '{"id": 9007199254740993, "price": 1.10, "exp": 1e2, "dup": 1, "dup": 2}'
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    tab.page.get_by_role("tab", name="Produce").click()
    tab.page.get_by_label("Value type").select_option("json")
    tab.page.get_by_label("Value", exact=True).fill(typed)
    tab.page.get_by_role("button", name="Produce").click()
    expect(tab.page.get_by_text("Stored in partition 0 at offset 0.")).to_be_visible()
    record = admin.get(f"/admin/v1/topics/{topic}/browse").json()["records"][0]
    assert record["value"]["text"] == typed


def test_the_live_tail_stops_on_a_refusal_instead_of_retrying(
    tab: Tab, admin: httpx.Client
) -> None:
    tails: list[str] = []
    tab.page.on(
        "request",
        lambda r: (
            tails.append(r.url) if "/admin/v1/topics/" in r.url and "/tail" in r.url else None
        ),
    )
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{_name('absent')}")
    expect(tab.page.get_by_text("The tail stopped: 404")).to_be_visible()
    expect(tab.page.get_by_role("button", name="Resume")).to_be_visible()
    tab.page.wait_for_timeout(4000)  # the old tail retried every 3 s
    assert len(tails) == 1, tails


def test_the_live_tail_reads_new_partitions_and_what_came_while_paused(
    tab: Tab, admin: httpx.Client
) -> None:
    topic = _name("growing")
    _create(admin, topic)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.get_by_text("Live: waiting for new records")).to_be_visible()
    tail = tab.page.get_by_role("table", name=f"Live tail of {topic}")
    # Paused before any record was seen: resuming goes on from where the tail started.
    tab.page.get_by_role("button", name="Pause").click()
    _batch(admin, topic, [{"value": "while paused"}])
    tab.page.get_by_role("button", name="Resume").click()
    expect(tail.locator("tbody")).to_contain_text("while paused")
    # A partition added while the tail is open is read from its first record.
    assert admin.patch(f"/admin/v1/topics/{topic}", json={"partitions": 3}).status_code == 200
    _batch(admin, topic, [{"value": "in a new partition", "partition": 2}])
    expect(tail.locator("tbody")).to_contain_text("in a new partition", timeout=10_000)
    # Browse's partitions follow the topic's count.
    tab.page.get_by_role("tab", name="Browse").click()
    expect(tab.page.get_by_label("Partition").locator("option")).to_have_count(4, timeout=15_000)


def test_the_live_tail_starts_over_on_a_topic_made_again(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("remade")
    _create(admin, topic)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.get_by_text("Live: waiting for new records")).to_be_visible()
    _batch(admin, topic, [{"value": f"old {i}"} for i in range(3)])
    expect(tab.page.get_by_text("3 records received")).to_be_visible()
    tab.page.get_by_role("button", name="Pause").click()
    assert admin.delete(f"/admin/v1/topics/{topic}").status_code == 204
    _create(admin, topic)
    _batch(admin, topic, [{"value": f"new {i}"} for i in range(2)])
    tab.page.get_by_role("button", name="Resume").click()
    expect(tab.page.get_by_text("5 records received")).to_be_visible(timeout=10_000)
    tail = tab.page.get_by_role("table", name=f"Live tail of {topic}")
    expect(tail.locator("tbody")).to_contain_text("new 1")


def test_the_topic_figures_stay_fresh(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("fresh")
    _create(admin, topic)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.locator(".cards")).to_contain_text("Records kept0")
    _batch(admin, topic, [{"value": "one"}, {"value": "two"}])
    # Kafka counts a transaction's marker among the offsets: 2 or 3.
    expect(tab.page.locator(".cards")).to_contain_text(
        re.compile("Records kept[23]"), timeout=15_000
    )


def test_a_consume_only_client_browses_every_partition(tab: Tab, admin: httpx.Client) -> None:
    topic, client = _name("readonly"), _name("reader")
    _create(admin, topic, partitions=3)
    made = admin.post("/admin/v1/clients", json={"name": client, "consume": [topic]})
    assert made.status_code == 201, made.text
    key = admin.post(f"/admin/v1/clients/{client}/keys", json={}).json()["key"]
    tab.sign_in(key)
    tab.open(f"#/topics/{topic}")
    expect(tab.page.get_by_text("Live: waiting for new records")).to_be_visible()
    tab.page.get_by_role("tab", name="Browse").click()
    expect(tab.page.get_by_label("Partition").locator("option")).to_have_count(4)


def test_alter_sends_only_what_changed(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("altered")
    _create(admin, topic, retention_ms=1234567890123456789, retention_bytes=1234567890123456789)
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    tab.page.get_by_role("button", name="Alter").click()
    dialog = tab.page.get_by_role("dialog", name=f"Alter {topic}")
    dialog.get_by_label("Partitions").fill("2")
    dialog.get_by_role("button", name="Save").click()
    expect(
        tab.page.get_by_role("table", name="Partitions and their watermarks").locator("tbody tr")
    ).to_have_count(2)
    described = admin.get(f"/admin/v1/topics/{topic}").json()
    assert described["retention_ms"] == 1234567890123456789
    assert described["retention_bytes"] == 1234567890123456789


def test_a_malformed_address_is_not_found(tab: Tab) -> None:
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open("#/topics/%ZZ")
    expect(tab.page.get_by_role("heading", name="Not found")).to_be_visible()


def test_errors_show_the_status_and_a_word_never_a_number(tab: Tab) -> None:
    tab.sign_in(E2E_ADMIN_KEY)
    shown = tab.page.evaluate(
        """async () => {
            const { api } = await import("/console/js/api.js");
            try { await api("/subjects/no-such-subject/versions"); }
            catch (error) { return String(error); }
        }"""
    )
    assert shown.startswith("404: "), shown
    assert "40401" not in shown
    tab.open(f"#/topics/{_name('missing')}")
    expect(tab.page.get_by_role("alert").first).to_contain_text("404 unknown_topic: ")


def test_consumers_and_confirmations_for_the_right_people(tab: Tab, admin: httpx.Client) -> None:
    topic, client = _name("confirm"), _name("plain")
    _create(admin, topic)
    made = admin.post("/admin/v1/clients", json={"name": client, "admin": [topic]})
    assert made.status_code == 201, made.text
    key = admin.post(f"/admin/v1/clients/{client}/keys", json={}).json()["key"]
    tab.sign_in(key)
    nav = tab.page.get_by_role("navigation", name="Console sections")
    expect(nav.get_by_role("link", name="Consumers")).to_be_hidden()
    tab.open(f"#/topics/{topic}")
    for action in ("Purge", "Delete"):
        tab.page.get_by_role("button", name=action).click()
        dialog = tab.page.get_by_role("dialog")
        # Enter on the dialog must not destroy anything: Cancel has the focus.
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        tab.page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)


def test_the_topic_search_is_in_the_address_and_a_refused_one_clears_the_list(
    tab: Tab, admin: httpx.Client
) -> None:
    stem = _name("searched")
    for i in range(3):
        _create(admin, f"{stem}-{i}")
    tab.sign_in(E2E_ADMIN_KEY)
    rows = tab.page.locator("table tbody tr")
    tab.page.get_by_label("Search topics by name").fill(stem)
    tab.page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(3)
    assert f"name={stem}" in tab.page.url
    tab.page.get_by_role("link", name=f"{stem}-1").click()
    expect(tab.page.get_by_role("heading", name=f"{stem}-1")).to_be_visible()
    tab.page.go_back()
    expect(tab.page.get_by_label("Search topics by name")).to_have_value(stem)
    expect(rows).to_have_count(3)
    tab.page.get_by_label("Search topics by name").fill("x" * 250)
    tab.page.get_by_role("button", name="Search").click()
    expect(tab.page.get_by_role("alert").first).to_contain_text("400")
    expect(rows).to_have_count(0)


def test_a_long_value_is_cut_with_a_control_to_show_it_all(tab: Tab, admin: httpx.Client) -> None:
    topic = _name("long")
    _create(admin, topic)
    _batch(admin, topic, [{"value": "word " * 100_000}])
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    _browse(tab, topic)
    row = tab.page.get_by_role("table", name=f"Records of {topic}").locator("tbody tr")
    expect(row).to_have_count(1)
    box = row.bounding_box()
    assert box is not None
    assert box["height"] < 2000, box
    show = row.get_by_role("button", name="Show all 500,000 characters")
    show.click()
    expect(row.get_by_role("button", name="Show less")).to_have_attribute("aria-expanded", "true")
    box = row.bounding_box()
    assert box is not None
    assert box["height"] > 2000, box


def test_cloudevents_in_structured_mode_and_headers_that_are_not_text(
    tab: Tab, admin: httpx.Client
) -> None:
    topic = _name("structured")
    _create(admin, topic)
    event = {"specversion": "1.0", "type": "com.example.packed", "source": "/s", "id": "e-2"}
    body = {
        "headers": [
            {"name": "content-type", "value": _b64(b"application/cloudevents+json")},
            {"name": "trace", "value": _b64(b"\xff\xfe")},
        ],
        "value": {"type": "json", "data": {**event, "data": {"n": 1}}},
    }
    _produce_raw(admin, topic, json.dumps(body))
    binding = {
        "headers": [
            {"name": "ce_specversion", "value": _b64(b"1.0")},
            {"name": "ce_type", "value": _b64(b"com.example.bound")},
            {"name": "ce_blob", "value": _b64(b"\xff\x00")},
        ],
        "value": {"type": "text", "data": "bound"},
    }
    _produce_raw(admin, topic, json.dumps(binding))
    tab.sign_in(E2E_ADMIN_KEY)
    tab.open(f"#/topics/{topic}")
    _browse(tab, topic)
    rows = tab.page.get_by_role("table", name=f"Records of {topic}").locator("tbody tr")
    expect(rows).to_have_count(2)
    attributes = rows.nth(0).get_by_role("list", name="CloudEvent attributes")
    expect(attributes).to_contain_text("type: com.example.packed")
    headers = rows.nth(0).get_by_role("list", name="Headers")
    expect(headers).to_contain_text("trace: base64//4=")
    expect(rows.nth(1).get_by_role("list", name="CloudEvent attributes")).to_contain_text(
        "type: com.example.bound"
    )
    expect(rows.nth(1).get_by_role("list", name="Headers")).to_contain_text("ce_blob: base64/wA=")
