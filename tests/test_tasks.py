"""``sluicegate.tasks``: a cancelled task's error let go of, so that its frames go at once."""

from __future__ import annotations

import asyncio
import weakref

from sluicegate.tasks import let_go_of_cancellation
from tests.helpers import cyclic_collector_off


class _Held:
    """Something a task's frame holds (a stream's state, in the gateway)."""


async def test_a_cancelled_tasks_frames_go_without_the_cyclic_collector() -> None:
    held: list[weakref.ref[_Held]] = []

    async def waiting() -> None:
        task = asyncio.current_task()  # the frame refers back to its task: a cycle
        state = _Held()
        held.append(weakref.ref(state))
        await asyncio.Event().wait()
        del task, state

    with cyclic_collector_off():
        task = asyncio.create_task(waiting())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait((task,))
        let_go_of_cancellation(task)
        assert task.cancelled()  # its outcome stays what it was
        del task
        assert held[0]() is None


async def test_a_task_that_was_not_cancelled_is_left_as_it_is() -> None:
    async def failing() -> None:
        raise ValueError("kept")

    task = asyncio.create_task(failing())
    await asyncio.wait((task,))
    let_go_of_cancellation(task)
    assert isinstance(task.exception(), ValueError)
