"""A bare durable engine process for the multi-process tests: `python -m tests.engine_worker HUB WORKER_ID`.

Reads the storage connection string from AzureWebJobsStorage, serves the
engine test app, prints READY with its partitions, and stops on SIGTERM.
"""

import asyncio
import logging
import os
import signal
import sys

from durable_mgmt.taskhub import StorageAccount, TaskHub
from funchost.diagnostics import install_stack_dump
from funchost.engine import Engine
from funchost.loader import load_app

from .engine_support import ENGINE_APP


async def main(hub_name: str, worker_id: str) -> None:
    account = StorageAccount.from_connection_string(os.environ["AzureWebJobsStorage"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    install_stack_dump(loop)
    async with TaskHub(account, hub_name) as hub:
        engine = Engine(hub, load_app(ENGINE_APP), worker_id=worker_id, lease_tick_seconds=1.0,
                        visibility_seconds=int(os.environ.get("WORKER_VISIBILITY", "5")))
        await engine.start()
        print(f"READY {engine.owned_partitions}", flush=True)
        await stop.wait()
        await engine.stop()
        print(f"STOPPED episodes={engine.stats.get('episodes', 0)} activities={engine.stats.get('activities', 0)}",
              flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("WORKER_LOG", "WARNING"), stream=sys.stderr,
                        format=f"[{sys.argv[2]}] %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
