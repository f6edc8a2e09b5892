"""Where each task of the worker waits, followed into async generators, for a stall.

mode's SIGUSR1 dump stops at the first ``async for``: the awaitable there is an
``async_generator_asend``, which exposes neither a frame nor its generator. The
generator is among its GC referents (and a future among its iterator's), so the
walk goes on through it down to the future the task really waits on. Faust's
agents and streams are such generators.

Works around mode's SIGUSR1 dump (``mode.utils.tracebacks``), which stops at the first
``async for``. Remove once mode follows async generators itself.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import linecache
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

GENERATOR_STEPS = ("async_generator_asend", "async_generator_athrow")


def awaited_chain(awaitable: Any) -> Iterator[FrameType | object]:
    """The frames from ``awaitable`` down to what it waits on, then that thing itself."""
    seen: set[int] = set()
    node = awaitable
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        inner = _wrapped(node)
        if inner is not None:
            node = inner
            continue
        frame = _frame_of(node)
        if frame is None:
            yield node
            return
        yield frame
        node = _awaiting(node)


def _wrapped(node: Any) -> Any:
    """The generator behind an ``asend``, the future behind a future's ``__await__``."""
    kind = type(node).__name__
    wanted: Callable[[object], bool]
    if kind in GENERATOR_STEPS:
        wanted = inspect.isasyncgen
    elif kind == "FutureIter":
        wanted = asyncio.isfuture
    else:
        return None
    return next((ref for ref in gc.get_referents(node) if wanted(ref)), None)


def _frame_of(node: Any) -> FrameType | None:
    for name in ("cr_frame", "ag_frame", "gi_frame"):
        if hasattr(node, name):
            frame: FrameType | None = getattr(node, name)
            return frame
    return None


def _awaiting(node: Any) -> Any:
    for name in ("cr_await", "ag_await", "gi_yieldfrom"):
        if hasattr(node, name):
            return getattr(node, name)
    return None


def task_stack(task: asyncio.Task[Any]) -> str:
    lines = [f"TASK {task.get_name()} {task.get_coro()!r}"]
    for step in awaited_chain(task.get_coro()):
        if isinstance(step, FrameType):
            code = step.f_code
            source = linecache.getline(code.co_filename, step.f_lineno).strip()
            lines.append(f'  File "{code.co_filename}", line {step.f_lineno}, in {code.co_name}')
            lines.append(f"    {source}")
        else:
            lines.append(f"  waiting on {step!r}")
    return "\n".join(lines)


def all_stacks() -> str:
    """Every thread's stack, and every task of each thread's event loop."""
    frames = sys._current_frames()
    out: list[str] = []
    for thread in threading.enumerate():
        out.append(f"THREAD {thread.name}")
        frame = frames.get(thread.ident or -1)
        if frame is not None:
            out.extend(_frame_line(f) for f in _outward(frame))
        loop = _loop_of(thread)
        if loop is not None:
            out.extend(task_stack(task) for task in asyncio.all_tasks(loop))
    return "\n".join(out)


def _outward(frame: FrameType) -> Iterator[FrameType]:
    current: FrameType | None = frame
    while current is not None:
        yield current
        current = current.f_back


def _frame_line(frame: FrameType) -> str:
    return f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"


def _loop_of(thread: threading.Thread) -> asyncio.AbstractEventLoop | None:
    if thread is threading.main_thread():
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None
    # mode runs Faust's consumer in a thread of its own, with its own event loop.
    loop = getattr(getattr(thread, "service", None), "thread_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
