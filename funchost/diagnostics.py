"""A process that hangs explains itself: on SIGUSR1, every asyncio task's await chain and every thread's stack.

    kill -USR1 <pid of funcpy start>     # written to stderr; the process runs on

A stop that never ended once left only an idle event loop to look at (py-spy shows threads, not what each
task awaits). The await chain of each task, down to the innermost coroutine, names the wait that never
ends. Only code locations are written: no values, so no keys or payloads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import TextIO

DUMP_SIGNAL = signal.SIGUSR1


def install_stack_dump(loop: asyncio.AbstractEventLoop) -> None:
    """Dump stacks to stderr when this process gets SIGUSR1 (handled on ``loop``)."""
    loop.add_signal_handler(DUMP_SIGNAL, dump_stacks)


def dump_stacks(out: TextIO | None = None) -> None:
    """Write every task of the running loop (its await chain) and every thread (its stack) to ``out``."""
    out = out or sys.stderr
    print(f"--- stacks of process {os.getpid()} ---", file=out)
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    for task in tasks:
        print(f"task {task.get_name()!r}:", file=out)
        frames = ((f, f.f_lineno) for f in _await_chain(task.get_coro()))
        print("".join(traceback.format_list(traceback.StackSummary.extract(frames))), end="", file=out)
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        print(f"thread {names.get(ident, ident)!r}:", file=out)
        print("".join(traceback.format_stack(frame)), end="", file=out)
    print(f"--- end of stacks ({len(tasks)} tasks) ---", file=out, flush=True)


def _await_chain(coro) -> list[FrameType]:
    """The frames from a task's coroutine down to the innermost coroutine it awaits (whose line is the wait)."""
    frames: list[FrameType] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


__all__ = ["install_stack_dump", "dump_stacks", "DUMP_SIGNAL"]
