"""``docs/prometheus-alerts.yml``: valid rule syntax, and every metric it names is one the
app exports (scraped from /metrics with a consumer group in it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from tests.dialects.cloudevents.conftest import key_for

RULES = Path(__file__).parents[2] / "docs" / "prometheus-alerts.yml"
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_METRIC = re.compile(r"\bsluicegate_[a-z_]+\b")


def load() -> dict[str, Any]:
    document = yaml.safe_load(RULES.read_text())
    assert isinstance(document, dict)
    return document


def test_the_rules_file_has_prometheus_rule_syntax() -> None:
    groups = load()["groups"]
    assert groups
    names = set()
    for group in groups:
        assert set(group) <= {"name", "interval", "limit", "rules"}
        assert group["name"] not in names
        names.add(group["name"])
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str)
            assert rule["expr"].count("(") == rule["expr"].count(")")
            if "for" in rule:
                assert _DURATION.match(rule["for"])
            for field in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(field, {}).values())


def test_it_alerts_on_growing_lag_old_events_and_dead_letters() -> None:
    rules = {rule["alert"]: rule for group in load()["groups"] for rule in group["rules"]}
    exprs = " ".join(rule["expr"] for rule in rules.values())
    lag = next(r for r in rules.values() if "deriv(sluicegate_consumer_group_lag[5m])" in r["expr"])
    assert lag["for"] == "5m"
    assert "sluicegate_consumer_group_oldest_unconfirmed_age_seconds >" in exprs
    assert "rate(sluicegate_consumer_group_dead_letters_total[5m])) > 0" in exprs


def test_it_alerts_on_records_of_internal_topics_skipped() -> None:
    rules = {rule["alert"]: rule for group in load()["groups"] for rule in group["rules"]}
    skipped = rules["SluicegateUnreadableInternalRecords"]
    assert (
        "increase(sluicegate_storage_unreadable_records_skipped_total[10m]) > 0"
        in (skipped["expr"])
    )


async def test_every_metric_it_names_is_exported(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    consumer = await key_for(gateway, "billing", Permissions(ce_consume_types=["Order.*"]))
    created = await client.post("/ce/consumers", headers=consumer)
    assert created.status_code == 201
    path = httpx.URL(created.headers["location"]).path
    assert (
        await client.get(f"{path}/events", params={"timeout": "0"}, headers=consumer)
    ).status_code == 204
    scraped = (await client.get("/metrics")).text
    exported = {
        sample.name
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    named = set(_METRIC.findall(RULES.read_text()))
    assert named
    assert named <= exported, f"not exported: {sorted(named - exported)}"
