"""The node's Kafka reads in a process of their own, so that no fetched message waits for
the loop's GIL.

Every record a consumer reads was a librdkafka message first, and turning one into a
Python record costs a few microseconds (``consume``, its headers, its fields). On a
thread of the server, that work and the event loop took turns under one GIL, at about
1.7 µs a message more than either alone (``docs/design-notes.md``). This process runs the
node's one reading consumer (``reader_worker``) with an interpreter of its own, on the
other core, and sends what it read as msgpack that the server decodes straight into
``Record``s in one C call. It is the SQLite commit process's shape, applied to reads.

The server sends it a frame of requests (``Request``) once per loop turn in which reads
were asked, and it answers with ``Outcome`` frames. The process lives as long as the
server, ignores the job's stop signals, and ends when its input closes. One that ends
on its own (killed, out of memory) is replaced: the reads it held fail with ``503`` and
what the server keeps in memory stays valid, since only the server's reads fill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sluicegate.core.records import Record
from sluicegate.errors import StorageError, StorageUnavailable
from sluicegate.storage.pipes import FRAME_LENGTH, PipeClosed, wide_pipe

__all__ = [
    "CLOSING",
    "KAFKA_ERROR",
    "OUT_OF_RANGE",
    "TIMED_OUT",
    "Outcome",
    "ReaderProcess",
    "Request",
    "Settings",
]

logger = logging.getLogger(__name__)

#: A read: its id, the Kafka topic and partition, the gateway's topic name, the offset to
#: read from, the end not to pass, its most records and bytes, and whether a caller waits
#: for it (else it fills the read-ahead, whose bound counts bytes another way).
Request = tuple[int, str, int, str, int, int, int, int, bool]

#: Why a read failed (``Outcome.failed``).
OUT_OF_RANGE, KAFKA_ERROR, TIMED_OUT, CLOSING = range(4)


class Settings(msgspec.Struct, array_like=True, frozen=True):
    """The process's first frame: its consumer's librdkafka settings, and how long a read
    may wait for a broker."""

    config: dict[str, Any]
    timeout: float


class Outcome(msgspec.Struct, array_like=True, gc=False):
    """What the process has to say: each list in the order the server must apply it."""

    #: Reads for the read-ahead: id, the offset these records start from, the records,
    #: their sizes (``Record.size()``), the offset up to which they are every committed
    #: record, and whether more follow (a refill sends what it has after each batch of
    #: messages).
    refilled: list[tuple[int, int, list[Record], list[int], int, bool]] = []
    #: After a read answered in this frame: its id, where what followed starts, those
    #: records, the sizes of the read's records and then of those, and where the
    #: partition ends (if found).
    following: list[tuple[int, int, list[Record], list[int], int | None]] = []
    #: Waited reads answered: id and records.
    finished: list[tuple[int, list[Record]]] = []
    #: Waited reads failed: id, why (``OUT_OF_RANGE``...), Kafka's error code, message.
    failed: list[tuple[int, int, int, str]] = []
    #: The consumer's error callbacks: code, message, fatal, retriable.
    errors: list[tuple[int, str, bool, bool]] = []
    #: librdkafka's log lines: level and message.
    logs: list[tuple[int, str]] = []
    #: Rounds on the broker so far.
    rounds: int = 0


#: Seconds past a round's deadline that a process asked to end may take before it is
#: killed.
_CLOSE_GRACE = 5.0

#: A process that ends sooner than this after it started is not started again: something
#: in its setup fails, and the server stops rather than start it in a loop.
_SHORTEST_LIFE = 1.0


class _Frames(asyncio.Protocol):
    """The read end of the process's output: each whole frame decoded and handed on.

    Unlike a ``StreamReader``, it never pauses its transport: the process sends only what
    was asked for, and a frame of a megabyte is read as the pipe delivers it.
    """

    def __init__(
        self,
        decode: Callable[[memoryview], Outcome],
        on_outcome: Callable[[Outcome], None],
        closed: asyncio.Future[None],
    ) -> None:
        self._decode = decode
        self._on_outcome = on_outcome
        self._closed = closed
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start, size = 0, len(buffer)
        header = FRAME_LENGTH.size
        with memoryview(buffer) as view:
            while size - start >= header:
                (length,) = FRAME_LENGTH.unpack_from(buffer, start)
                end = start + header + length
                if end > size:
                    break
                # Decoding copies what it keeps: the view is not held past this call.
                self._on_outcome(self._decode(view[start + header : end]))
                start = end
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


class ReaderProcess:
    """The server's side: start the process, send it reads, hand its outcomes to the loop."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        timeout: float,
        on_outcome: Callable[[Outcome], None],
        on_lost: Callable[[str], None],
    ) -> None:
        # The server's logger cannot cross: the process collects librdkafka's lines itself.
        config = {name: value for name, value in config.items() if name != "logger"}
        self._settings = msgspec.msgpack.encode(Settings(config, timeout))
        self._timeout = timeout
        self._on_outcome = on_outcome
        self._on_lost = on_lost
        self._process: asyncio.subprocess.Process | None = None
        self._input: asyncio.WriteTransport | None = None
        self._input_closed: asyncio.Future[None] | None = None
        self._output_closed: asyncio.Future[None] | None = None
        self._outbox: list[Request] = []
        self._flushing = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._encode_into = msgspec.msgpack.Encoder().encode_into
        self._decode = msgspec.msgpack.Decoder(Outcome).decode
        #: Resolves when the process is closed, or fails when it could not be replaced.
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.create_task(self._run(), name="kafka-reader-process")
        self._task.add_done_callback(self._ended)

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        # Both pipes widened: a frame of a round's records is about a megabyte, which then
        # goes in one write, not one per 64 KiB each waiting for the loop to read the last.
        input_read, input_write = wide_pipe()
        output_read, output_write = wide_pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluicegate.storage.kafka.reader_worker",
                str(os.getpid()),
                stdin=input_read,
                stdout=output_write,
            )
        except BaseException:
            os.close(input_write)
            os.close(output_read)
            raise
        finally:
            os.close(input_read)  # the process has its own copies
            os.close(output_write)
        self._output_closed = loop.create_future()
        frames = _Frames(self._decode, self._on_outcome, self._output_closed)
        # The transports own the files from here and close them.
        await loop.connect_read_pipe(lambda: frames, os.fdopen(output_read, "rb", buffering=0))
        closed = self._input_closed = loop.create_future()
        pipe = os.fdopen(input_write, "wb", buffering=0)
        self._input, _ = await loop.connect_write_pipe(lambda: PipeClosed(closed), pipe)
        # The settings go through the pipe, not the command line: they may hold SASL
        # passwords.
        self._input.write(FRAME_LENGTH.pack(len(self._settings)) + self._settings)
        if self._outbox:
            self._flush()

    def send(self, request: Request) -> None:
        """Queue ``request``; the requests of one loop turn go in one frame."""
        self._outbox.append(request)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        pipe = self._input
        if not self._outbox or pipe is None or pipe.is_closing():
            return  # sent once the process is there again (``_spawn``)
        frame = bytearray(FRAME_LENGTH.size)
        self._encode_into(self._outbox, frame, FRAME_LENGTH.size)
        FRAME_LENGTH.pack_into(frame, 0, len(frame) - FRAME_LENGTH.size)
        pipe.write(frame)
        self._outbox = []

    async def _run(self) -> None:
        """Wait for the process to end; start another if it ends on its own."""
        while True:
            process, output_closed = self._process, self._output_closed
            assert process is not None
            assert output_closed is not None
            started = time.monotonic()
            await output_closed  # every frame it sent was handed on
            code = await process.wait()
            if self._closing:
                return
            if self._input is not None:
                self._input.close()
            why = f"the Kafka reader process exited with status {code}"
            self._on_lost(why)
            if time.monotonic() - started < _SHORTEST_LIFE:
                raise StorageError(f"{why} {time.monotonic() - started:.1f}s after it started")
            logger.error("%s; starting another", why)
            await self._spawn()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self.ended.done():
            return
        if task.cancelled():
            self.ended.set_exception(StorageUnavailable("the Kafka reader was cancelled"))
        elif (error := task.exception()) is not None:
            self.ended.set_exception(error)
        else:
            self.ended.set_result(None)

    async def close(self) -> None:
        """End the process's input; it answers what it holds, then exits. One that has
        not ended a round's deadline later (stopped, hung) is killed."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout + _CLOSE_GRACE
        if self._input is not None and self._input_closed is not None:
            self._flush()
            self._input.close()
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(self._input_closed)
            except TimeoutError:
                self._input.abort()  # a full pipe nobody reads
        if self._task is None:
            return
        done, _ = await asyncio.wait([self._task], timeout=deadline - loop.time())
        if not done and self._process is not None:
            logger.error("the Kafka reader process did not end when asked; killing it")
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await asyncio.wait([self._task])
