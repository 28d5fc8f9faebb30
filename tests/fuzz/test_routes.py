"""Every route the app serves, fuzzed over a real socket: never a 5xx, every error in the
route's dialect format, a 405 that says what is allowed, and a server that goes on.

The routes are read from the app's router (``served_app``), so a route added later is
fuzzed too; see ``catalogue.py`` for how a route is reached and what its errors look
like, and ``mutations.py`` for what is done wrong. Hypothesis draws from a fixed seed
per route, so a run in CI is the same run every time; ``--fuzz-long`` (or
``SLUICEGATE_FUZZ_LONG=1``) draws many more.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from sluicegate.config import LimitSettings
from sluicegate.errors import MethodNotAllowed
from sluicegate.http.router import plain_errors
from tests.fuzz.catalogue import Target, error_shape, expected_renderer, fuzz_targets
from tests.fuzz.conftest import AUTHORIZATION, FuzzServer, served_app
from tests.fuzz.mutations import Case, bad_text_cases, cases, valid_request
from tests.raw_http import RawResponse, exchange, request_bytes

ROUTER = served_app().router
TARGETS = fuzz_targets(ROUTER)
#: The HTTP layer answers what never reaches a route in the body of no dialect.
PLAIN = error_shape(plain_errors)
MAX_DEPTH = LimitSettings().max_json_depth


def check(server: FuzzServer, case: Case, response: RawResponse | None) -> None:
    """What every answer to a fuzzed request must be."""
    where = f"{case.kind}: {case.data[:300]!r}"
    if response is None:
        # Only a client that stopped halfway, or sent no HTTP, may get no answer.
        assert case.incomplete or case.framing, f"no answer to {where}"
    else:
        assert response.status < 500, f"{response.status} {response.body[:500]!r} for {where}"
        if response.status >= 400 and case.method != "HEAD":  # a HEAD answer has no body
            shape = error_shape(expected_renderer(ROUTER, case.method, case.target))
            problem = shape.mismatch(response.header("content-type"), response.body)
            if problem is not None and case.framing:
                problem = PLAIN.mismatch(response.header("content-type"), response.body)
            assert problem is None, f"{problem} for {where}"
        if response.status == 405:
            assert response.header("allow"), f"405 without Allow for {where}"
        if case.too_deep:
            assert response.status == 400, f"{response.status} for {where}"
    health = exchange(server.address, request_bytes("GET", b"/healthz", []))
    assert health is not None, f"/healthz did not answer after {where}"
    assert health.status == 200, f"/healthz after {where}: {health}"


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.id)
def test_route_answers_its_valid_examples(fuzz_server: FuzzServer, target: Target) -> None:
    """The starting points reach the route: fuzzing them is not fuzzing a 401 or 404."""
    for example in target.examples:
        request = valid_request(target, example, AUTHORIZATION)
        response = exchange(fuzz_server.address, request.case("valid").data)
        assert response is not None
        assert response.status not in (401, 403, 405, 415), (target.id, response)
        assert response.status < 500, (target.id, response)


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.id)
def test_route_survives_mutated_requests(
    fuzz_server: FuzzServer, fuzz_examples: int, target: Target
) -> None:
    @seed(zlib.crc32(target.id.encode()))
    @settings(
        max_examples=fuzz_examples,
        deadline=None,
        database=None,
        # No "explain" phase: it prints every draw, and some are 64 kB headers.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases(target, AUTHORIZATION, MAX_DEPTH))
    def survives(case: Case) -> None:
        head = case.method == "HEAD"
        response = exchange(fuzz_server.address, case.data, head=head, half_close=case.incomplete)
        check(fuzz_server, case, response)

    survives()


@pytest.mark.parametrize(
    "target", [t for t in TARGETS if t.examples[0].body is not None], ids=lambda t: t.id
)
def test_every_string_of_the_body_holding_what_is_not_text(
    fuzz_server: FuzzServer, target: Target
) -> None:
    """Every string of every example, one at a time, with each of ``BAD_TEXT``: the space
    is small enough to walk whole, and a string read late (a raw value decoded again)
    is as likely to break as the first."""
    for example in target.examples:
        for case in bad_text_cases(valid_request(target, example, AUTHORIZATION)):
            check(fuzz_server, case, exchange(fuzz_server.address, case.data))


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]
PATHS = sorted({target.path(target.examples[0].params) for target in TARGETS})


@pytest.mark.parametrize("path", PATHS)
def test_every_method_on_every_path(fuzz_server: FuzzServer, path: str) -> None:
    """A method a path does not serve is a 405 naming those it does, in its dialect."""
    for method in METHODS:
        expected_allow = None
        try:
            ROUTER.match(method, path)
        except MethodNotAllowed as exc:
            expected_allow = ", ".join(exc.allowed)
        if expected_allow is None and method not in ("GET", "HEAD"):
            continue  # served: the mutations above send it, without deleting what they use
        data = request_bytes(method, path.encode(), [(b"authorization", AUTHORIZATION)])
        response = exchange(fuzz_server.address, data, head=method == "HEAD")
        assert response is not None, (method, path)
        case = Case("method", method, path.encode(), data)
        check(fuzz_server, case, response)
        if expected_allow is not None:
            assert response.status == 405, (method, path, response)
            assert response.header("allow") == expected_allow, (method, path)
