"""librdkafka's repeated lines: once in a window, then how many were dropped."""

from __future__ import annotations

import logging

import pytest

from sluicegate.storage.kafka.client_log import Repeats, client_log

REFUSED = (
    "FAIL [sluicegate-n1-admin#producer-3] [thrd:sasl_plaintext://127.0.0.1:9093/bootstrap]: "
    "SASL authentication error: Authentication failed (after {}ms in state AUTH_REQ)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, "%s", (message,), None)


def test_a_line_like_one_just_said_is_dropped_and_counted_in_the_next() -> None:
    clock = Clock()
    repeats = Repeats(window=10.0, clock=clock)
    assert repeats.filter(_record(REFUSED.format(301)))
    for step in range(1, 30):  # three a second, the milliseconds differing
        clock.now = 100.0 + step / 3
        assert not repeats.filter(_record(REFUSED.format(300 + step)))
    # Another line is its own.
    assert repeats.filter(_record("FAIL [sluicegate-n1-producer#producer-4] another failure"))
    clock.now = 110.5
    said = _record(REFUSED.format(307))
    assert repeats.filter(said)
    assert said.getMessage() == (f"{REFUSED.format(307)} (and 29 more like it in the 10 s before)")
    # A line that comes back after a quiet window says nothing of the past.
    clock.now = 130.0
    again = _record(REFUSED.format(305))
    assert repeats.filter(again)
    assert again.getMessage() == REFUSED.format(305)


def test_the_gateways_librdkafka_logger_drops_repeats(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=client_log.name)
    line = "unique line of this test %d"
    for _ in range(5):
        client_log.error(line, 1)
    assert [r.getMessage() for r in caplog.records] == ["unique line of this test 1"]
