"""A 500 over a real socket: uvicorn on 127.0.0.1 serving the app, a real HTTP client.

An unexpected exception inside the produce path must reach the client as a 500 with an
incident id and nothing else, reach the log with its traceback under that id, and
leave the server serving.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from tests.e2e.conftest import on_server
from tests.helpers import serving

BODY = {"value": {"type": "text", "data": "v"}}


@pytest.fixture
async def base_url(app: GatewayApp, settings: Settings, http_server: str) -> AsyncIterator[str]:
    async with serving(app, on_server(settings, http_server)) as port:
        yield f"http://127.0.0.1:{port}"


async def test_500_carries_an_incident_id_and_the_server_goes_on(
    base_url: str,
    gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    send = gateway.producer.send

    def broken(records: Any) -> Any:
        raise RuntimeError("secret internals")

    url = f"{base_url}/v2/topics/orders/records"
    async with httpx.AsyncClient() as client:
        monkeypatch.setattr(gateway.producer, "send", broken)
        with caplog.at_level(logging.ERROR, logger="sluicegate.app"):
            response = await client.post(url, json=BODY)
        assert response.status_code == 500
        body = response.json()
        assert set(body) == {"error_code", "message", "incident_id"}
        assert re.fullmatch(r"[0-9a-f]{16}", body["incident_id"])
        assert "secret" not in response.text
        assert "Traceback" not in response.text
        [logged] = [r for r in caplog.records if getattr(r, "incident", None)]
        assert logged.incident == body["incident_id"]  # type: ignore[attr-defined]
        assert logged.exc_info is not None
        assert "secret internals" in str(logged.exc_info[1])

        monkeypatch.setattr(gateway.producer, "send", send)
        after = await client.post(url, json=BODY)
        assert after.status_code == 200
        assert after.json()["topic_name"] == "orders"
