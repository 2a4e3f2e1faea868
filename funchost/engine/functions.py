"""Calling orchestrator and activity functions with the values the Python worker would pass.

Conversions use azure-functions' own converters (``OrchestrationTriggerConverter``,
``ActivityTriggerConverter``), so inputs and outputs are exactly what the
worker would produce in Azure.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

# Runs an activity function with its decoded input: (function info, value) -> result.
ActivityRunner = Callable[[Any, Any], Awaitable[Any]]


def call_orchestrator(user_function: Callable[..., Any], context_json: str) -> str:
    """Run the SDK's orchestrator handle over one history; returns its JSON state (or raises)."""
    context = OrchestrationTriggerConverter.decode(meta.Datum(type="json", value=context_json), trigger_metadata=None)
    return user_function(context)


def decode_activity_input(input_json: str | None) -> Any:
    if input_json is None:
        return None
    return ActivityTriggerConverter.decode(meta.Datum(type="json", value=input_json), trigger_metadata=None)


def encode_activity_output(value: Any) -> str:
    return ActivityTriggerConverter.encode(value, expected_type=None).value


def direct_runner(executor: Executor) -> ActivityRunner:
    """Call an activity with its input as the only argument (no other bindings)."""

    async def run(info: Any, value: Any) -> Any:
        fn = info.user_function
        kwargs = {info.trigger_parameter: value}
        if asyncio.iscoroutinefunction(fn):
            return await fn(**kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, **kwargs))

    return run


__all__ = ["call_orchestrator", "decode_activity_input", "encode_activity_output", "direct_runner", "ActivityRunner"]
