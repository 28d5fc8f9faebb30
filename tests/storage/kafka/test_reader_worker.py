"""The reader process's own loop, run in this process: its collector schedule."""

from __future__ import annotations

import gc
import io
import logging
import weakref
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from sluicegate.storage.kafka import reader_worker
from sluicegate.storage.kafka.reader_process import Settings


class _Cycle:
    """Garbage only the cyclic collector frees: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_off() -> Iterator[None]:
    """As in the process: the automatic collections off."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.fixture
def client_logger_kept() -> Iterator[None]:
    """The reader takes over librdkafka's logger, as its process may: given back after,
    for the in-process clients of the tests that follow."""
    logger = logging.getLogger("sluicegate.storage.kafka.librdkafka")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _garbage() -> weakref.ref[_Cycle]:
    return weakref.ref(_Cycle())


def test_cyclic_garbage_is_collected_between_rounds_at_most_once_a_period(
    collector_off: None, client_logger_kept: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A consumer of a port nobody listens on: made, never connected (nothing is read).
    settings = Settings({"bootstrap.servers": "127.0.0.1:9", "group.id": "unused"}, 1.0)
    reader = reader_worker._Reader(settings, io.BytesIO())
    try:
        now = [1000.0]
        monkeypatch.setattr(reader_worker, "time", SimpleNamespace(monotonic=lambda: now[0]))
        reader._collected = now[0]
        young = _garbage()
        reader._collect()
        assert young() is not None  # within the period: left for later
        now[0] += reader_worker._COLLECT_EVERY
        reader._collect()
        assert young() is None
        again = _garbage()
        now[0] += reader_worker._COLLECT_EVERY / 2
        reader._collect()
        assert again() is not None  # the period counts from the last collection
        now[0] += reader_worker._COLLECT_EVERY / 2
        reader._collect()
        assert again() is None
    finally:
        reader._consumer.close()
