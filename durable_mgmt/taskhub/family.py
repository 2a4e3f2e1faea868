"""Sub-orchestrations of an instance, found where the provider records them: the parent's history.

Each ``SubOrchestrationInstanceCreated`` row names the child in its
``InstanceId`` column (``SubOrchestrationInstanceCreatedEvent.InstanceId``,
src/DurableTask.Core/History/SubOrchestrationInstanceCreatedEvent.cs).
Rows of every execution are read, so children started before a
ContinueAsNew are found too.
"""

from __future__ import annotations

from .events import EventType


async def children(hub, instance_id: str) -> list[str]:
    rows = await hub.history.rows(instance_id, select=["PartitionKey", "RowKey", "EventType", "InstanceId"])
    created = EventType.SubOrchestrationInstanceCreated.name
    return list(dict.fromkeys(r["InstanceId"] for r in rows if r.get("EventType") == created and r.get("InstanceId")))


async def descendants(hub, instance_id: str) -> list[str]:
    """Every sub-orchestration below ``instance_id``, children before their parents (the purge order).

    ``instance_id`` itself is not included. A child that appears twice (or a
    cycle, which the engine never writes) is visited once.
    """
    seen = {instance_id}
    order: list[str] = []

    async def visit(iid: str) -> None:
        for child in await children(hub, iid):
            if child in seen:
                continue
            seen.add(child)
            await visit(child)
            order.append(child)

    await visit(instance_id)
    return order


def parents_first(instance_id: str, family: list[str]) -> list[str]:
    """``instance_id`` and its ``descendants`` in the order a terminate must reach them: every parent before
    its children.

    Why: the provider tells a parent that its sub-orchestration was terminated with a
    ``SubOrchestrationInstanceFailed`` message (durabletask ``TaskOrchestrationDispatcher``,
    ``ProcessWorkflowCompletedTaskDecision``: Failed or Terminated children send it). A child terminated
    before its parent's terminate message is queued can make the parent fail on that message first, and it
    ends Failed instead of Terminated. A parent's terminate queued first is ahead of the notice in its
    control queue, and an instance processes its messages in order.
    """
    return [instance_id] + family[::-1]  # the reverse of a children-first order puts parents first
