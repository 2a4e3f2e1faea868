"""kill -USR1 makes a process write what every task awaits and every thread runs (funchost/diagnostics.py)."""

import asyncio
import io
import os
import signal
import threading

from funchost.diagnostics import dump_stacks, install_stack_dump


async def _waits_for_the_signal_that_never_comes(never: asyncio.Event) -> None:
    await never.wait()


async def test_the_dump_names_each_task_down_to_its_innermost_wait_and_each_thread():
    never, done = asyncio.Event(), threading.Event()
    task = asyncio.create_task(_waits_for_the_signal_that_never_comes(never), name="stuck-stop")
    thread = threading.Thread(target=done.wait, name="activity_0")
    thread.start()
    try:
        await asyncio.sleep(0)
        out = io.StringIO()
        dump_stacks(out)
        text = out.getvalue()
    finally:
        done.set()
        task.cancel()
        thread.join()
    stuck = text[text.index("task 'stuck-stop':"):]
    assert "in _waits_for_the_signal_that_never_comes" in stuck and "await never.wait()" in stuck
    assert "locks.py" in stuck.split("task '")[1], "the chain stops short of the innermost wait"
    assert "thread 'activity_0':" in text and "thread 'MainThread':" in text
    assert text.rstrip().endswith("---")


async def test_sigusr1_writes_the_dump_to_stderr_and_the_process_runs_on(capfd):
    loop = asyncio.get_running_loop()
    install_stack_dump(loop)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            await asyncio.sleep(0.01)
            err = capfd.readouterr().err
            if err:
                break
        assert f"--- stacks of process {os.getpid()} ---" in err and "test_sigusr1_writes_the_dump" in err
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
