"""Reading identities from client certificates."""

from __future__ import annotations

import datetime

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sluicegate.core.auth.certificates import PeerCertificate, parse_certificate


def test_common_name_and_alt_names() -> None:
    leaf = trustme.CA().issue_cert(
        "svc.example.com", "ops@example.com", "10.0.0.7", common_name="orders-app"
    )
    cert = parse_certificate(leaf.cert_chain_pems[0].bytes().decode())
    assert cert.common_name == "orders-app"
    assert cert.alt_names == (
        "svc.example.com",
        "ops@example.com",
        "10.0.0.7",
    )
    assert cert.identities()[0] == "orders-app"
    assert "CN=orders-app" in cert.subject
    assert len(cert.fingerprint) == 64


def test_uri_alt_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.com/orders")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    parsed = parse_certificate(cert.public_bytes(serialization.Encoding.PEM).decode())
    assert parsed.common_name is None
    assert parsed.identities() == ("spiffe://example.com/orders",)


def test_without_common_name() -> None:
    leaf = trustme.CA().issue_cert("only-san.example.com")
    cert = parse_certificate(leaf.cert_chain_pems[0].bytes().decode())
    assert cert.identities() == ("only-san.example.com",)


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="asn1"):
        parse_certificate("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_identities_of_a_bare_certificate() -> None:
    assert PeerCertificate(common_name=None).identities() == ()
