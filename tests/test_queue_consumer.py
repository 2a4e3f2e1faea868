"""The shared receive loop ends when cancelled, whatever it was waiting for at that moment.

The root cause of processes that did not exit after SIGTERM while an orchestration was in flight (three
fresh-clone CI runs): the engine's stop cancels each queue reader and awaits it. A reader idles in
``Poller.idle``, which a local send wakes (LocalRouter). On Python 3.11 ``asyncio.wait_for`` swallows a
cancel that arrives while the awaited wake-up is already done (CPython gh-86296), so a reader woken and
cancelled in the same moment went on polling, and the stop awaiting it never returned. No storage needed.
"""

import asyncio

from funchost.queue_consumer import Poller, receive_loop


async def _idle_reader(poller: Poller) -> tuple[asyncio.Task, list[int]]:
    polls: list[int] = []

    async def receive(count: int) -> list:
        polls.append(count)
        return []  # an empty queue: the loop idles in poller.idle() between polls

    reader = asyncio.create_task(receive_loop("q", poller, receive, lambda m: None, room=lambda: 1))
    while not polls:
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # past its poll, well inside poller.idle() (the poller's delay is long)
    return reader, polls


async def _ends(task: asyncio.Task) -> bool:
    done, _ = await asyncio.wait({task}, timeout=3)
    if not done:
        task.cancel()  # a second cancel lands: leave nothing running after the test
        await asyncio.gather(task, return_exceptions=True)
    return bool(done)


async def test_a_reader_woken_and_cancelled_in_the_same_moment_ends():
    poller = Poller(minimum=30, maximum=30)
    reader, polls = await _idle_reader(poller)
    poller.wake()    # a local send to its queue ...
    reader.cancel()  # ... and the engine's stop, before the loop runs again
    assert await _ends(reader), f"the cancelled reader polled on ({len(polls)} polls)"
    assert reader.cancelled()


async def test_a_reader_cancelled_one_step_after_its_wake_up_ends():
    # The wake-up has resumed Event.wait but not yet the reader: the other half of the same window.
    poller = Poller(minimum=30, maximum=30)
    reader, polls = await _idle_reader(poller)
    poller.wake()
    await asyncio.sleep(0)
    reader.cancel()
    assert await _ends(reader), f"the cancelled reader polled on ({len(polls)} polls)"


async def test_idle_backs_off_when_not_woken_and_resets_when_woken():
    poller = Poller(minimum=0.01, maximum=0.04)
    await poller.idle()
    await poller.idle()
    assert poller.delay == 0.04  # doubled twice, capped at the maximum
    poller.wake()
    await poller.idle()          # returns at once: woken before it waited
    assert poller.delay == 0.01
