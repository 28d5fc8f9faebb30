"""TLS client certificates: the identities in a verified certificate.

The TLS layer has already verified the chain against ``server.tls.client_ca`` before a
certificate gets here; this module only reads who it names. A client's
``certificate_subjects`` list the names (the subject's common name, or a DNS, e-mail,
URI or IP subject alternative name) that authenticate as that client.
"""

from __future__ import annotations

import functools

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

__all__ = ["PeerCertificate", "parse_certificate"]


class PeerCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified client certificate says about its holder."""

    #: The subject's common name, if any.
    common_name: str | None
    #: Subject alternative names (DNS, e-mail, URI, IP), in certificate order.
    alt_names: tuple[str, ...] = ()
    #: The RFC 4514 form of the subject, for logs.
    subject: str = ""
    #: SHA-256 of the DER certificate, hex.
    fingerprint: str = ""

    def identities(self) -> tuple[str, ...]:
        """The names this certificate may map to a client by: CN first, then SANs."""
        head = (self.common_name,) if self.common_name else ()
        return head + self.alt_names


def _alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for general in extension.value:
        if isinstance(general, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            names.append(general.value)
        elif isinstance(general, x509.IPAddress):
            names.append(str(general.value))
    return tuple(names)


# The same certificate arrives on every request of a connection (and on every
# connection of a client), so parsing is memoized by its PEM text.
@functools.lru_cache(maxsize=4096)
def parse_certificate(pem: str) -> PeerCertificate:
    """Read the identities of a PEM certificate; ``ValueError`` if it does not parse."""
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = cns[0].value if cns else None
    return PeerCertificate(
        common_name=common_name if isinstance(common_name, str) else None,
        alt_names=_alt_names(cert),
        subject=cert.subject.rfc4514_string(),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )
