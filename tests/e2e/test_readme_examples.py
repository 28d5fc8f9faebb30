"""The README's walkthrough, run against a new server as the quick start makes one.

Its examples show the ids a new server hands out (topics v1 addresses a topic by id, and
answers with message ids); this keeps them true when the gateway's own topics change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from sluicegate.testing.process import serve_in_subprocess

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _shown(pattern: str) -> str:
    """The one thing ``pattern``'s group matches in the README."""
    [found] = re.findall(pattern, README)
    return str(found)


def test_the_topics_v1_example_shows_the_ids_a_new_server_gives(tmp_path: Path) -> None:
    topic_id = _shown(r"new server on embedded storage `orders` above is (\d+),")
    assert _shown(r"/api/v1/topics/(\d+)/publish") == topic_id
    assert _shown(r"/api/v1/topics/(\d+)/consume") == topic_id
    published = _shown(r'# \{"message_id":"(\w+)"\}')
    after = _shown(r'"after_message_id": "(\w+)"')
    first_start = tmp_path / "stdout.txt"
    # Authentication on, as ``make serve`` runs: its first start creates the admin client.
    with serve_in_subprocess(tmp_path / "data", args=(), stdout=first_start) as server:
        [key] = re.findall(r"sg_\w+", first_start.read_text())
        auth = {"Authorization": f"Bearer {key}"}
        produced = httpx.post(
            f"{server.url}/v2/topics/orders/records",
            headers={**auth, "Content-Type": "application/json"},
            json={
                "key": {"type": "text", "data": "customer-42"},
                "value": {"type": "json", "data": {"total": 12.5}},
            },
        )
        assert produced.status_code == 200, produced.text
        answer = httpx.post(
            f"{server.url}/api/v1/topics/{topic_id}/publish",
            headers=auth,
            content=json.dumps({"Name": "Jane", "Surname": "Doe"}),
        )
        assert answer.json() == {"message_id": published}
        consumed = httpx.post(
            f"{server.url}/api/v1/topics/{topic_id}/consume",
            headers=auth,
            content=json.dumps({"after_message_id": after, "timeout_secs": 30}),
        )
        [message] = consumed.json()["messages"]
        assert message["message_id"] == published
        assert message["payload"] == {"Name": "Jane", "Surname": "Doe"}
