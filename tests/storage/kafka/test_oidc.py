"""A gateway on a cluster whose principals are an identity provider's: SASL OAUTHBEARER
with tokens from an OAuth 2.0 token endpoint (librdkafka's ``sasl.oauthbearer.method =
"oidc"``, the client credentials grant), which the broker checks against the provider's
keys (Kafka's JWT validator), as the README's OIDC settings have it.

The provider is ``identity_provider``'s, a real HTTP server on 127.0.0.1; the broker is
one of its own, its OAUTHBEARER mechanism taking only tokens that provider signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from sluicegate.testing.kafka_broker import KafkaBroker
from sluicegate.testing.process import serve_in_subprocess
from tests.storage.kafka.acls import grant_readme_acls
from tests.storage.kafka.conftest import serve_until_readyz_says, write_gateway_config
from tests.storage.kafka.identity_provider import IdentityProvider, identity_provider

#: The gateway's client at the identity provider, and the principal its tokens name.
CLIENT_ID = "sluicegate-gateway"
CLIENT_SECRET = "the-gateway-client-secret"
SUBJECT = "gateway"
NODE = "n1"


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with identity_provider(CLIENT_ID, CLIENT_SECRET, SUBJECT) as provider:
        yield provider


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, provider: IdentityProvider
) -> Iterator[KafkaBroker]:
    # PLAIN stays on the SASL listener (the broker needs one user); the gateway uses
    # OAUTHBEARER only.
    directory = tmp_path_factory.mktemp("kafka-oidc")
    users = {"admin": "admin-password"}
    with KafkaBroker(directory, sasl_users=users, oauthbearer_jwks_url=provider.jwks_url) as b:
        yield b


def _config(
    directory: Path, broker: KafkaBroker, provider: IdentityProvider, prefix: str, secret: str
) -> Path:
    """The README's OIDC settings, for the broker's SASL listener."""
    client = f'''"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "OAUTHBEARER"
"sasl.oauthbearer.method" = "oidc"
"sasl.oauthbearer.client.id" = "{CLIENT_ID}"
"sasl.oauthbearer.client.secret" = "{secret}"
"sasl.oauthbearer.token.endpoint.url" = "{provider.token_url}"
"sasl.oauthbearer.scope" = "kafka"'''
    bootstrap = broker.sasl_bootstrap_servers
    return write_gateway_config(
        directory, node=NODE, bootstrap=bootstrap, prefix=prefix, client=client
    )


async def test_a_gateway_with_an_identity_providers_token_serves_every_dialect(
    broker: KafkaBroker, provider: IdentityProvider, tmp_path: Path
) -> None:
    prefix = "oidc."
    grant_readme_acls(broker, prefix, user=SUBJECT, node=NODE)
    config = _config(tmp_path, broker, provider, prefix, CLIENT_SECRET)
    args = ("--no-auth", "--config", str(config))
    with serve_in_subprocess(tmp_path / "data", args=args) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            # Records v2 (the idempotent producer) and a batch (a transaction).
            made = await http.post("/admin/v1/topics", json={"name": "orders", "partitions": 1})
            assert made.status_code == 201, made.text
            record = {"value": {"type": "text", "data": "a"}}
            single = await http.post("/v2/topics/orders/records", json=record)
            assert single.status_code == 200, single.text
            rows = {"records": [{"value": "b"}, {"value": "c"}]}
            batch = await http.post("/admin/v1/topics/orders/records", json=rows)
            assert batch.status_code == 200, batch.text
            read = await http.get("/admin/v1/topics/orders/records", params={"partition": 0})
            assert [r["value"] for r in read.json()["records"]] == ["a", "b", "c"]
            # CloudEvents: a consumer reads and confirms (the group's offsets in Kafka).
            event = {"specversion": "1.0", "id": "e1", "source": "urn:oidc", "type": "Order.Paid"}
            produced = await http.post(
                "/ce/produce/event",
                json=event,
                headers={"content-type": "application/cloudevents+json"},
            )
            assert produced.status_code == 202, produced.text
            created = await http.post("/ce/consumers", params={"group": "billing"})
            assert created.status_code == 201, created.text
            instance = urlsplit(created.headers["location"]).path
            polled = await http.get(f"{instance}/events", params={"timeout": "5"})
            assert [e["id"] for e in polled.json()] == ["e1"]
            confirmed = await http.post(f"{instance}/confirm")
            assert confirmed.status_code == 204, confirmed.text
    errors = [line for line in server.log if '"level":"error"' in line]
    assert not errors, errors
    # The tokens the broker took came from the provider.
    assert provider.issued >= 1


async def test_a_client_secret_the_identity_provider_refuses_is_said_by_readyz(
    broker: KafkaBroker, provider: IdentityProvider, tmp_path: Path
) -> None:
    prefix = "oidc-refused."
    grant_readme_acls(broker, prefix, user=SUBJECT, node=NODE)
    config = _config(tmp_path, broker, provider, prefix, "not-the-secret")
    log = tmp_path / "serve.log"
    refused_before = provider.refused
    await serve_until_readyz_says(tmp_path, config, log, "refuses the gateway's credentials")
    assert provider.refused > refused_before
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    said = [e["msg"] for e in entries if e["logger"] == "sluicegate.storage.kafka.node"]
    assert any("credentials" in message for message in said), said


def test_the_broker_takes_only_tokens_the_provider_signed(broker: KafkaBroker) -> None:
    # What makes the tests above mean something: an unsigned token naming the same
    # principal, which the other tests' broker takes, is refused here.
    errors: list[KafkaError] = []
    admin = AdminClient(
        {
            "bootstrap.servers": broker.sasl_bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": f"principal={SUBJECT}",
            "error_cb": errors.append,
        }
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(0)
    assert KafkaError._AUTHENTICATION in {error.code() for error in errors}, errors
