"""Call a user function the way the Python worker does, then write its outputs.

Every binding is passed by keyword under its name: the trigger value, a
``func.Out`` per output, the durable client's JSON string (the SDK's wrapper
reads it by keyword and builds the client), and ``context`` when the function
asks for it. Async functions are awaited on the event loop; sync ones run in
the host's thread pool so the loop never blocks. Output values are written
only when the function succeeds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import azure.functions as func

from .bindings import OutputWriter, OutValue
from .loader import CONTEXT_PARAMETER, FunctionInfo

log = logging.getLogger("funchost")

ClientJson = Callable[[Mapping[str, Any]], str]


@dataclass
class InvocationContext(func.Context):
    """The ``context`` parameter: ids and names of this invocation."""

    _invocation_id: str
    _function_name: str
    _function_directory: str
    _thread_local: threading.local = field(default_factory=threading.local)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def thread_local_storage(self) -> threading.local:
        return self._thread_local

    @property
    def trace_context(self):
        return None

    @property
    def retry_context(self):
        return None


class Invoker:
    def __init__(self, outputs: OutputWriter, executor: Executor, client_json: ClientJson | None = None,
                 function_directory: str = ""):
        self._outputs = outputs
        self._executor = executor
        self._client_json = client_json
        self._directory = function_directory

    async def invoke(self, info: FunctionInfo, trigger_value: Any, *, reason: str,
                     trigger_data: Mapping[str, Any] | None = None) -> Any:
        """Run ``info`` once; returns its result (an HTTP output's value when it set one).

        Raises whatever the function raised, or a BindingError when an output
        cannot be written; either way the invocation is logged as Failed.
        """
        invocation_id = str(uuid.uuid4())
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", info.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            result = await self._run(info, trigger_value, invocation_id, trigger_data or {})
        except BaseException as e:
            elapsed = (time.perf_counter() - started) * 1000
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", info.name, invocation_id, elapsed,
                      exc_info=not isinstance(e, asyncio.CancelledError))
            raise
        elapsed = (time.perf_counter() - started) * 1000
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", info.name, invocation_id, elapsed)
        return result

    async def _run(self, info: FunctionInfo, trigger_value: Any, invocation_id: str,
                   trigger_data: Mapping[str, Any]) -> Any:
        # Output names built from the trigger's data are checked before the function runs, so a request
        # or message that would steer an output elsewhere is refused with nothing done.
        self._outputs.check(info, trigger_data)
        kwargs: dict[str, Any] = {info.trigger_parameter: trigger_value}
        outs: dict[str, OutValue] = {}
        for b in info.bindings:
            name = b["name"]
            if b is info.trigger or name == "$return":
                continue
            if b.get("direction") == "out":
                outs[name] = kwargs[name] = OutValue()
            elif b.get("type") == "durableClient":
                if self._client_json is None:
                    raise RuntimeError(f"{info.describe()} takes a durable client, but this host has no task hub.")
                kwargs[name] = self._client_json(b)
        if CONTEXT_PARAMETER not in kwargs and _wants_context(info.user_function):
            kwargs[CONTEXT_PARAMETER] = InvocationContext(invocation_id, info.name, self._directory)

        if info.is_async:
            result = await info.user_function(**kwargs)
        else:
            call = functools.partial(info.user_function, **kwargs)
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, contextvars.copy_context().run, call)

        # Shielded: once the function has returned, its outputs are written whole even if the caller leaves.
        return await asyncio.shield(self._write_outputs(info, result, outs, trigger_data))

    async def _write_outputs(self, info: FunctionInfo, result: Any, outs: dict[str, OutValue],
                             trigger_data: Mapping[str, Any]) -> Any:
        ret = info.return_binding
        if ret is not None and ret.get("type") != "http":
            await self._outputs.write(info, ret, result, trigger_data)
        http_result = result
        for b in info.outputs:
            out = outs.get(b["name"])
            if out is None or not out.is_set:
                continue
            if b.get("type") == "http":
                http_result = out.get()
            else:
                await self._outputs.write(info, b, out.get(), trigger_data)
        return http_result


@functools.lru_cache(maxsize=1024)
def _wants_context(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return CONTEXT_PARAMETER in params


def log_crash(task: asyncio.Task) -> None:
    """Done-callback for long-running host tasks: a loop that dies must say so, not vanish."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped unexpectedly; its trigger no longer runs.", task.get_name(),
                  exc_info=task.exception())
