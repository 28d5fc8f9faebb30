import pytest

from sluicegate.errors import MethodNotAllowed, NotFound
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route, Router


async def endpoint(request: Request) -> Response:
    return Response()


ROUTER = Router(
    [
        Route("/healthz", endpoint),
        Route("/v2/topics/{topic_name}/records", endpoint, frozenset({"POST"})),
        Route(
            "/{bridge}/ce/consumers/{group}/instances/{instance}", endpoint, frozenset({"DELETE"})
        ),
        Route("/files/{rest:path}", endpoint),
    ]
)


def test_static_and_templated_routes() -> None:
    assert ROUTER.match("GET", "/healthz")[1] == {}
    route, params = ROUTER.match("POST", "/v2/topics/orders.eu/records")
    assert route.path == "/v2/topics/{topic_name}/records"
    assert params == {"topic_name": "orders.eu"}


def test_leading_parameter_routes() -> None:
    _, params = ROUTER.match("DELETE", "/node-1/ce/consumers/~default/instances/abc")
    assert params == {"bridge": "node-1", "group": "~default", "instance": "abc"}


def test_path_parameter_spans_segments() -> None:
    assert ROUTER.match("GET", "/files/a/b/c")[1] == {"rest": "a/b/c"}


def test_wrong_method_lists_allowed() -> None:
    with pytest.raises(MethodNotAllowed) as info:
        ROUTER.match("GET", "/v2/topics/t/records")
    assert info.value.allowed == ["POST"]


@pytest.mark.parametrize("path", ["/v2/topics/t", "/v2/topics/a/b/records", "/nope", ""])
def test_unknown_paths(path: str) -> None:
    with pytest.raises(NotFound):
        ROUTER.match("POST", path)


@pytest.mark.parametrize(
    "path",
    [
        "/node-1/ce/consumers/~default/instances/abc",
        "/node-1/ce/consumers/~default/instances/abc/",
        "/node-1/ce/consumers/~default/instances/abc/nope",
        "/node-1/ce/consumers/~default/instances",
    ],
)
def test_a_near_miss_under_a_leading_parameter_gets_that_routes_errors(path: str) -> None:
    closest = ROUTER.closest(path)
    assert closest is not None
    assert closest.path == "/{bridge}/ce/consumers/{group}/instances/{instance}"


@pytest.mark.parametrize("path", ["/node-1/other/x", "/node-1", "/"])
def test_a_path_like_no_route_has_no_closest(path: str) -> None:
    assert ROUTER.closest(path) is None
