"""What the tests of the HTTP layer over TLS share: a CA, the server's certificate files
signed by it, and client contexts that trust it."""

from __future__ import annotations

import ssl

import pytest
import trustme


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``certfile`` (the server's key and chain, for 127.0.0.1) and ``client_ca``."""
    directory = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "certfile": directory / "server.pem",
        "client_ca": directory / "ca.pem",
    }
    server.private_key_and_cert_chain_pem.write_to_path(str(files["certfile"]))
    ca.cert_pem.write_to_path(str(files["client_ca"]))
    return {name: str(path) for name, path in files.items()}


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client context that trusts ``ca``, presenting ``cert`` if given."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context
