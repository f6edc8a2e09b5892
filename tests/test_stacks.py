"""The stall dump follows a task through ``async for`` down to the future it waits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streams.workarounds.stacks import all_stacks, task_stack


async def _events(gate: asyncio.Future[int]) -> AsyncIterator[int]:
    yield await gate  # the line a stalled stream sits on


async def _agent(gate: asyncio.Future[int]) -> None:
    async for _ in _events(gate):
        pass


async def _dump_while_waiting() -> tuple[str, str]:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_agent(gate), name="agent-under-test")
    await asyncio.sleep(0.01)
    dumps = task_stack(task), all_stacks()
    gate.set_result(1)
    await task
    return dumps


def test_the_dump_reaches_the_future_inside_the_async_generator() -> None:
    one, everything = asyncio.run(_dump_while_waiting())
    assert "in _agent" in one
    assert "in _events" in one
    assert "yield await gate" in one
    assert "waiting on <Future pending" in one
    assert one.index("in _agent") < one.index("in _events") < one.index("waiting on")
    assert "TASK agent-under-test" in everything
    assert "THREAD MainThread" in everything
