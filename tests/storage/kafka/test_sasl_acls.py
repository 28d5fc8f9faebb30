"""A gateway on a cluster that authenticates it (SASL PLAIN, or SCRAM-SHA-512 over TLS
as the README's example has it) and authorizes it (ACLs).

The README lists the ACLs a gateway's principal needs; a node granted exactly those
serves every dialect, on either listener. A refused login, and a broker certificate the
gateway does not trust, are said by ``/readyz`` and the log (librdkafka only retries, so
both looked like a cluster that does not answer). An ACL the gateway lacks is
a 500 that says so, for single records and transactions alike (a transaction's refusal
was a 503, inviting retries that meet it again), and a transactional id it may not use
stops its start with that error on one line.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trustme
from confluent_kafka.admin import (
    AdminClient,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from sluicegate.storage.kafka.client_log import REPEAT_WINDOW
from sluicegate.testing.kafka_broker import KafkaBroker
from sluicegate.testing.process import serve_in_subprocess
from tests.storage.kafka.acls import README_ACLS, grant_readme_acls
from tests.storage.kafka.conftest import (
    free_port,
    serve_at,
    serve_until_readyz_says,
    write_gateway_config,
)

USER = "gateway"
PASSWORD = "gateway-password-for-the-acl-tests"
NODE = "n1"
EVENT_TYPE = "Order.Created"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """The certificate authority of the broker's TLS listener."""
    return trustme.CA()


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, authority: trustme.CA
) -> Iterator[KafkaBroker]:
    """A broker whose SASL listeners (one plain, one TLS) know ``USER`` and authorize by
    ACLs."""
    leaf = authority.issue_cert("127.0.0.1")
    tls = (leaf.private_key_pem.bytes(), b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    directory = tmp_path_factory.mktemp("kafka")
    users = {USER: PASSWORD}
    client_ca = authority.cert_pem.bytes()  # it signs the gateway's certificate too
    with KafkaBroker(directory, sasl_users=users, tls=tls, client_ca=client_ca) as broker:
        # The same user and password for SCRAM-SHA-512, kept in the cluster's metadata.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        scram = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upsert = UserScramCredentialUpsertion(USER, scram, PASSWORD.encode())
        for done in admin.alter_user_scram_credentials([upsert]).values():
            done.result()
        yield broker


#: The README's ACLs for a gateway of a prefix and node ``NODE`` whose principal is ``USER``.
_grant = functools.partial(grant_readme_acls, user=USER, node=NODE)


def _config(
    directory: Path,
    broker: KafkaBroker,
    prefix: str,
    password: str,
    *,
    authority: trustme.CA | None = None,
    mechanism: str = "PLAIN",
    certificate: trustme.LeafCert | None = None,
) -> Path:
    """The gateway's settings for the plain SASL listener, or with ``authority`` (the CA
    it trusts) for the TLS one; ``mechanism`` is SASL's. With a client ``certificate``
    too, the listener that authenticates by certificate, with no SASL at all."""
    directory.mkdir(parents=True, exist_ok=True)
    if authority is None:
        bootstrap, protocol, tls = broker.sasl_bootstrap_servers, "SASL_PLAINTEXT", ""
    else:
        bootstrap, protocol = broker.sasl_ssl_bootstrap_servers, "SASL_SSL"
        authority.cert_pem.write_to_path(str(directory / "kafka-ca.pem"))
        tls = f'"ssl.ca.location" = "{directory / "kafka-ca.pem"}"'
    sasl = f'''"sasl.mechanism" = "{mechanism}"
"sasl.username" = "{USER}"
"sasl.password" = "{password}"'''
    if mechanism == "OAUTHBEARER":
        # librdkafka makes an unsigned token whose subject is the user (the test broker's
        # validator takes it); a cluster with an identity provider sets
        # "sasl.oauthbearer.method" = "oidc" and its client id, secret and token URL.
        sasl = f'''"sasl.mechanism" = "OAUTHBEARER"
"enable.sasl.oauthbearer.unsecure.jwt" = true
"sasl.oauthbearer.config" = "principal={USER}"'''
    if certificate is not None:
        bootstrap, protocol, sasl = broker.ssl_bootstrap_servers, "SSL", ""
        certificate.cert_chain_pems[0].write_to_path(str(directory / "gateway.pem"))
        certificate.private_key_pem.write_to_path(str(directory / "gateway.key"))
        tls += f'''
"ssl.certificate.location" = "{directory / "gateway.pem"}"
"ssl.key.location" = "{directory / "gateway.key"}"'''
    client = f'''"security.protocol" = "{protocol}"
{sasl}
{tls}'''
    return write_gateway_config(
        directory, node=NODE, bootstrap=bootstrap, prefix=prefix, client=client
    )


def _events(*ids: str) -> str:
    return json.dumps(
        [
            {"specversion": "1.0", "id": id_, "source": "urn:acl", "type": EVENT_TYPE, "data": {}}
            for id_ in ids
        ]
    )


@pytest.mark.parametrize(
    "listener",
    # The second is the README's example: SCRAM-SHA-512 over TLS, a CA file to trust. The
    # third authenticates by the gateway's certificate (mutual TLS), whose CN is its user;
    # the fourth by an OAuth bearer token, whose subject is.
    ["sasl-plaintext-plain", "sasl-ssl-scram", "ssl-client-certificate", "sasl-oauthbearer"],
)
async def test_the_acls_the_readme_lists_are_enough_for_every_dialect(
    broker: KafkaBroker, authority: trustme.CA, tmp_path: Path, listener: str
) -> None:
    prefix = f"readme-{listener}."
    _grant(broker, prefix)
    tls = listener not in ("sasl-plaintext-plain", "sasl-oauthbearer")
    mechanisms = {"sasl-plaintext-plain": "PLAIN", "sasl-oauthbearer": "OAUTHBEARER"}
    config = _config(
        tmp_path,
        broker,
        prefix,
        PASSWORD,
        authority=authority if tls else None,
        mechanism=mechanisms.get(listener, "SCRAM-SHA-512"),
        certificate=(
            authority.issue_cert(USER, common_name=USER)
            if listener == "ssl-client-certificate"
            else None
        ),
    )
    served = tmp_path / "serve.log"
    args = ("--no-auth", "--config", str(config))
    with serve_in_subprocess(tmp_path / "data", args=args, log_file=served) as (server):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            # The topic admin API: create, produce (a transaction), read, grow, configure.
            made = await http.post("/admin/v1/topics", json={"name": "orders", "partitions": 1})
            assert made.status_code == 201, made.text
            rows = {"records": [{"value": "a"}, {"value": "b"}]}
            batch = await http.post("/admin/v1/topics/orders/records", json=rows)
            assert batch.status_code == 200, batch.text
            # Records v2: a single record, through the idempotent producer.
            record = {"value": {"type": "text", "data": "c"}}
            single = await http.post("/v2/topics/orders/records", json=record)
            assert single.status_code == 200, single.text
            read = await http.get("/admin/v1/topics/orders/records", params={"partition": 0})
            assert read.status_code == 200, read.text
            assert [r["value"] for r in read.json()["records"]] == ["a", "b", "c"]
            grown = await http.patch(
                "/admin/v1/topics/orders", json={"partitions": 2, "retention_ms": 3_600_000}
            )
            assert grown.status_code == 200, grown.text
            # Topics v1: a topic of its own, a publish, a consume.
            topic = await http.post(
                "/api/event_streams/topics", json={"name": "people", "schema": []}
            )
            assert topic.status_code == 200, topic.text
            topic_id = topic.json()["data"]["id"]
            published = await http.post(f"/api/v1/topics/{topic_id}/publish", json={"n": 1})
            assert published.status_code == 200, published.text
            consumed = await http.post(f"/api/v1/topics/{topic_id}/consume", json={})
            assert consumed.status_code == 200, consumed.text
            assert [m["payload"] for m in consumed.json()["messages"]] == [{"n": 1}]
            # CloudEvents: a batch (a transaction), a consumer, its confirmation (the
            # group's offsets, committed to Kafka).
            produced = await http.post(
                "/ce/produce/events",
                content=_events("e1", "e2"),
                headers={"content-type": "application/cloudevents-batch+json"},
            )
            assert produced.status_code == 202, produced.text
            created = await http.post("/ce/consumers", params={"group": "billing"})
            assert created.status_code == 201, created.text
            instance = urlsplit(created.headers["location"]).path
            polled = await http.get(f"{instance}/events", params={"timeout": "5"})
            assert [event["id"] for event in polled.json()] == ["e1", "e2"]
            confirmed = await http.post(f"{instance}/confirm")
            assert confirmed.status_code == 204, confirmed.text
            assert (await http.delete(instance)).status_code == 204
            # Purged, then deleted.
            purged = await http.post("/admin/v1/topics/orders/purge")
            assert purged.status_code == 204, purged.text
            deleted = await http.delete("/admin/v1/topics/orders")
            assert deleted.status_code == 204, deleted.text
    errors = [line for line in server.log if '"level":"error"' in line]
    assert not errors, errors
    # The start's question of how the topics are replicated needs no right beyond these.
    assert "could not tell how the gateway's topics are replicated" not in served.read_text()


async def test_an_acl_the_gateway_lacks_is_a_500_that_says_so(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = "denied."
    _grant(broker, prefix, denied_writes=["locked"])
    config = _config(tmp_path, broker, prefix, PASSWORD)
    with serve_in_subprocess(tmp_path / "data", args=("--no-auth", "--config", str(config))) as (
        server
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for name in ("locked", "open"):
                made = await http.post("/admin/v1/topics", json={"name": name, "partitions": 1})
                assert made.status_code == 201, made.text
            record = {"value": {"type": "text", "data": "x"}}
            single = await http.post("/v2/topics/locked/records", json=record)
            assert single.status_code == 500, single.text
            assert "ACLs do not allow" in single.json()["message"]
            assert "Topic authorization failed" in single.json()["message"]
            rows = {"records": [{"value": "a"}, {"value": "b"}]}
            batch = await http.post("/admin/v1/topics/locked/records", json=rows)
            assert (batch.status_code, batch.json()["error"]) == (500, "storage_forbidden")
            assert "Topic authorization failed" in batch.json()["message"]
            # Both producers serve on: the refusal was this topic's, not theirs.
            assert (await http.post("/v2/topics/open/records", json=record)).status_code == 200
            again = await http.post("/admin/v1/topics/open/records", json=rows)
            assert again.status_code == 200, again.text
            read = await http.get("/admin/v1/topics/locked/records", params={"partition": 0})
            assert read.json()["records"] == []
            assert (await http.get("/readyz")).status_code == 200


async def test_a_refused_login_is_said_by_readyz_and_the_log(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = "login."
    _grant(broker, prefix)
    config = _config(tmp_path, broker, prefix, "not-the-password")
    log = tmp_path / "serve.log"
    started = time.monotonic()
    ready = await serve_until_readyz_says(
        tmp_path, config, log, "refuses the gateway's credentials"
    )
    lived = time.monotonic() - started
    assert "Authentication failed" in ready["message"]
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    said = [e["msg"] for e in entries if e["logger"] == "sluicegate.storage.kafka.node"]
    assert any("refuses the gateway's credentials" in message for message in said), said
    # librdkafka's own lines are the gateway's log entries too, not raw text on stderr,
    # and its report of each refused attempt (three a second) is said once in ten.
    assert not [line for line in log.read_text().splitlines() if line.startswith("%")]
    refusals = [
        e["msg"]
        for e in entries
        if e["logger"] == "sluicegate.storage.kafka.librdkafka"
        and "Authentication failed" in e["msg"]
    ]
    # (A broker learned besides the bootstrap one would be a second line: not more.)
    assert 1 <= len(refusals) <= 2 * (1 + lived // REPEAT_WINDOW), (lived, refusals)


async def test_a_broker_certificate_it_does_not_trust_is_said_by_readyz(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = "untrusted."
    _grant(broker, prefix)
    config = _config(tmp_path, broker, prefix, PASSWORD, authority=trustme.CA())
    ready = await serve_until_readyz_says(
        tmp_path, config, tmp_path / "serve.log", "the TLS handshake"
    )
    assert ready["message"].startswith(
        "the gateway is starting: its storage is not ready yet (the TLS handshake with "
        "Kafka fails: "
    )
    assert "certificate verify failed" in ready["message"]


async def test_a_client_certificate_the_broker_does_not_trust_is_said_by_readyz(
    broker: KafkaBroker, authority: trustme.CA, tmp_path: Path
) -> None:
    prefix = "stranger."
    _grant(broker, prefix)
    stranger = trustme.CA().issue_cert(USER, common_name=USER)  # the broker's CA signed none
    config = _config(tmp_path, broker, prefix, PASSWORD, authority=authority, certificate=stranger)
    ready = await serve_until_readyz_says(
        tmp_path, config, tmp_path / "serve.log", "the TLS handshake"
    )
    # Refused once the client's side of the handshake is done (TLS 1.3): an alert on
    # its first request, which librdkafka reports as a transport error.
    assert "the TLS handshake with Kafka fails" in ready["message"], ready
    assert "alert bad certificate" in ready["message"], ready


async def test_a_transactional_id_it_may_not_use_stops_the_start_saying_so(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = "notxn."
    _grant(broker, prefix, transactional_id=False)
    config = _config(tmp_path, broker, prefix, PASSWORD)
    log = tmp_path / "serve.log"
    process = serve_at(tmp_path / "data", free_port(), log, "--config", str(config))
    try:
        code = await asyncio.to_thread(process.wait, 120)
    finally:
        process.kill()
        process.wait()
    assert code == 1
    # The last thing it says, on stderr after its log: one error (wrapped as a terminal's).
    said = " ".join(log.read_text().partition("\nerror: ")[2].split())
    assert said.startswith("Kafka's ACLs do not allow the gateway's principal this"), said
    assert "Transactional Id authorization failed" in said, said
    assert f"transactional id 'sluicegate-{prefix}{NODE}'" in said, said


def _readme_section() -> str:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme[readme.index("### Storing in Apache Kafka") :]
    return section[: section.index("\n## ")]


def test_the_readme_lists_these_acls() -> None:
    said = " ".join(_readme_section().split())
    listed = {
        ResourceType.TOPIC: r"on its topics \(and on `<prefix>__sluicegate\*`\): ([^;]+);",
        ResourceType.GROUP: r"on its groups: ([^;]+);",
        ResourceType.TRANSACTIONAL_ID: r"on its transactional id \(.*?\): ([^;]+);",
        ResourceType.BROKER: r"and ([a-z ]+) on the cluster",
    }
    for kind, pattern in listed.items():
        found = re.search(pattern, said)
        assert found is not None, pattern
        words = re.sub(r" \([^)]*\)", "", found.group(1)).split(", ")
        assert (
            tuple(w.upper().replace("-", "_").replace(" ", "_") for w in words)
            == (README_ACLS[kind])
        ), found.group(1)


def test_the_readme_example_is_the_one_these_tests_run() -> None:
    section = _readme_section()
    start = section.index("```toml\n") + len("```toml\n")
    example = tomllib.loads(section[start : section.index("```", start)])
    client = example["kafka"]["client"]
    assert (client["security.protocol"], client["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert set(client) == {
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
    }
