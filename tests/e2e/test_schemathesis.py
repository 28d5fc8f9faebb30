"""Schemathesis, every phase (examples, coverage, fuzzing, stateful), against every OpenAPI
document a real server serves (``openapi.DOCUMENTS``: one added later is tested too).

No generated request may get a 5xx, and every response must conform to its document:
status codes, content types, headers and bodies. Stateful runs follow the documents' links
(create a topic, then describe, alter, produce to, read and delete it), so they reach real
topics, clients, keys, subjects and schema ids. A fixed seed and a bounded number of
examples keep the run short and the same from one run to the next.

The client authenticates with a JWT and is defined in the config file, so nothing the run
does (revoking keys, changing or deleting clients) can lock it out half-way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from sluicegate.openapi import DOCUMENTS
from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import backend_env

#: Settings for the runs, e.g. long polls that would only slow them down.
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Valid schemas for the registry's operations, so that stateful runs get past them.
SCHEMATHESIS_HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = 20
#: Examples per operation and phase: enough to hit every status each document lists.
MAX_EXAMPLES = 25
#: Seconds a request may take. A topic of thousands of partitions (the documents allow
#: 10,000) takes a single-node Kafka broker well over schemathesis's default 10 s to create.
REQUEST_TIMEOUT = 60
_SECRET = "schemathesis-hs256-secret-0123456789abcdef"

_SERVER_CONFIG = f"""\
[auth.jwt]
algorithms = ["HS256"]
secret = "{_SECRET}"
issuer = "sluicegate-tests"
audience = "sluicegate"

[[auth.clients]]
name = "schemathesis"
produce = ["*"]
consume = ["*"]
admin = ["*"]
ce_sources = ["*"]
ce_produce_types = ["*"]
ce_consume_types = ["*"]
"""

# Beyond the schema, valid data is not always valid: a name that is taken (409), a cursor
# this list never gave out, an Avro value that does not match its schema, an offset past the
# end (400). JSON Schema cannot say these, so a 4xx for them is right, not a failure.
_EXCLUDED_CHECKS = "positive_data_acceptance"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[ServerProcess]:
    # Taking ``http_server`` makes a server per HTTP server, not one shared by both.
    directory = tmp_path_factory.mktemp("schemathesis")
    config = directory / "sluicegate.toml"
    config.write_text(_SERVER_CONFIG, encoding="utf-8")
    env = backend_env(request, request.param)
    with serve_in_subprocess(directory / "data", args=("--config", str(config)), env=env) as server:
        yield server


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_conforms_to_its_document(server: ServerProcess, name: str, tmp_path: Path) -> None:
    token = jwt.encode(
        {
            "sub": "schemathesis",
            "iss": "sluicegate-tests",
            "aud": "sluicegate",
            "exp": int(time.time()) + 3600,
        },
        _SECRET,
        algorithm="HS256",
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "--no-color",
        "run",
        f"{server.url}/openapi/{name}.json",
        "--url",
        server.url,
        "--header",
        f"Authorization: Bearer {token}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "all",
        "--exclude-checks",
        _EXCLUDED_CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(SCHEMATHESIS_HOOKS)}
    # Run in the test's directory: schemathesis keeps a cache of crashes where it runs.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path
    )
    # The whole report on failure: every finding with its curl line to reproduce it.
    assert result.returncode == 0, result.stdout + result.stderr
