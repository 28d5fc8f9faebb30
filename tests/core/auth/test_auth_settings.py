"""Settings of the auth, limits and TLS sections: each problem names its key."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.config import load_settings
from sluicegate.errors import ConfigError

SECRET = "s" * 32


def key_of(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides=overrides)
    return caught.value.key


def jwt(**fields: Any) -> dict[str, Any]:
    return {"jwt": {"issuer": "https://idp", "audience": "gw", **fields}}


@pytest.mark.parametrize(
    ("auth", "key"),
    [
        (jwt(algorithms=["none"]), "auth.jwt.algorithms"),
        (jwt(algorithms=["HS256"]), "auth.jwt.secret"),
        (jwt(algorithms=["HS256"], secret="short"), "auth.jwt.secret"),
        (jwt(algorithms=["RS256"]), "auth.jwt.jwks"),
        (jwt(secret=SECRET), "auth.jwt.algorithms"),
        ({"jwt": {"algorithms": ["HS256"], "secret": SECRET, "audience": "gw"}}, "auth.jwt.issuer"),
        ({"jwt": {"algorithms": ["HS256"], "secret": SECRET, "issuer": "i"}}, "auth.jwt.audience"),
        (jwt(algorithms=["HS256"], secret=SECRET, leeway=-1), "auth.jwt.leeway"),
        (jwt(algorithms=["HS256"], secret=SECRET, jwks_refresh=0), "auth.jwt.jwks_refresh"),
        (jwt(algorithms=["HS256"], secret=SECRET, client_claim=""), "auth.jwt.client_claim"),
        ({"clients": [{"name": "a"}, {"name": "a"}]}, "auth.clients[1].name"),
        ({"clients": [{"name": "no spaces"}]}, "auth.clients[0].name"),
        ({"clients": [{"name": "a", "produce": ["ok", "not ok"]}]}, "auth.clients[0].produce"),
        ({"clients": [{"name": "a", "ce_sources": [""]}]}, "auth.clients[0].ce_sources"),
        (
            {
                "clients": [
                    {"name": "a", "certificate_subjects": ["x"]},
                    {"name": "b", "certificate_subjects": ["x"]},
                ]
            },
            "auth.clients[1].certificate_subjects",
        ),
        (
            {"clients": [{"name": "a", "certificate_subjects": [""]}]},
            "auth.clients[0].certificate_subjects",
        ),
    ],
)
def test_auth_problems_name_the_key(auth: dict[str, Any], key: str) -> None:
    assert key_of(auth=auth) == key


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ({"max_long_polls_per_client": 0}, "limits.max_long_polls_per_client"),
        ({"max_json_keys": 0}, "limits.max_json_keys"),
        ({"rate_per_second": -1}, "limits.rate_per_second"),
        ({"rate_burst": -1}, "limits.rate_burst"),
        (
            {"dialect_rates": {"x": {"rate_per_second": 0}}},
            "limits.dialect_rates.x.rate_per_second",
        ),
        (
            {"dialect_rates": {"x": {"rate_per_second": 1, "burst": -1}}},
            "limits.dialect_rates.x.burst",
        ),
    ],
)
def test_limit_problems_name_the_key(limits: dict[str, Any], key: str) -> None:
    assert key_of(limits=limits) == key


def test_valid_auth_settings() -> None:
    settings = load_settings(
        environ={"SLUICEGATE_LIMITS__DIALECT_RATES": "{cloudevents = {rate_per_second = 5}}"},
        overrides={
            "auth": {
                **jwt(algorithms=["HS256", "RS256"], secret=SECRET, jwks="/etc/jwks.json"),
                "clients": [
                    {
                        "name": "svc@example.com",
                        "produce": ["orders.*"],
                        "certificate_subjects": ["CN With Spaces"],
                    }
                ],
            },
            "server": {
                "tls": {
                    "certfile": "c.pem",
                    "keyfile": "k.pem",
                    "client_ca": "ca.pem",
                    "client_cert": "optional",
                }
            },
        },
    )
    assert settings.auth.clients[0].name == "svc@example.com"
    assert settings.limits.dialect_rates["cloudevents"].rate_per_second == 5
    assert settings.server.tls.client_cert == "optional"
    assert SECRET not in repr(settings)


def test_default_legacy_rate_is_1000_per_minute() -> None:
    rate = load_settings(environ={}).limits.dialect_rates["topics_v1_legacy"]
    assert rate.rate_per_second * 60 == pytest.approx(1000)
    assert rate.burst == 1000


def test_tls_client_cert_mode_is_checked() -> None:
    tls = {"certfile": "c.pem", "keyfile": "k.pem", "client_cert": "sometimes"}
    assert key_of(server={"tls": tls}) == "server.tls.client_cert"
