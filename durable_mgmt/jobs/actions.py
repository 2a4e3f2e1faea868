"""What a bulk job does to one instance, and how it tells whether an interrupted attempt took effect.

An instance is marked *claimed* in the job's table before it is acted on,
and its outcome is recorded after. When a job stops between the two (a
crash, SIGKILL, a lost connection), the claimed instances are *in doubt* on
resume: the request may or may not have been sent. Each action then looks
at the instance before acting again:

* terminate, suspend, rewind, purge: if the effect is visible (finished,
  Suspended, no longer Failed, gone) the instance is done; otherwise the
  request is sent again. A second terminate/suspend/resume message is
  harmless (the engine ignores it once the instance is in that state) and a
  rewind or purge repeated is idempotent. Before sending a terminate or
  suspend again, the instance gets ``IN_DOUBT_WAIT`` seconds to show the
  effect, so with a host running a message sent before the interruption is
  seen and not sent twice.
* raise-event and restart are never repeated: a second event or a second
  new instance would be a real duplicate. The instance is recorded as failed
  "in doubt", to be checked by a person.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..errors import DurableError, InstanceNotFound, WaitTimeout, WrongState
from ..models import RuntimeStatus
from ..taskhub import bulk_ops
from ..taskhub.family import descendants, parents_first
from .models import BulkAction, BulkRequest, InstanceOutcome, Outcome


def usual_reason(request: BulkRequest) -> str | None:
    """What most instances of a job that went as asked say: "terminate sent", "purged"... A checkpoint does
    not write these outcomes (the runner records them as implied by the job's cursor: one table write per
    instance was as costly as the operation itself); anything else is written."""
    if request.recursive:
        return None  # the reasons count the sub-orchestrations reached
    return {BulkAction.TERMINATE: TERMINATE_SENT, BulkAction.PURGE: PURGED, BulkAction.SUSPEND: "suspend sent",
            BulkAction.RESUME: "resume sent", BulkAction.REWIND: "rewound",
            BulkAction.RAISE_EVENT: f"event {request.event_name!r} sent"}.get(request.action)


TERMINATE_SENT = "terminate sent"
PURGED = "purged"


@dataclass(frozen=True)
class Context:
    manager: Any   # InstanceManager
    hub: Any       # the opened TaskHub (family lookups, batch reads)
    request: BulkRequest
    purger: Any = None  # taskhub.bulk_ops.BatchPurger, for batch purges
    terminate_message: Any = None  # taskhub.bulk_ops.terminate_message(reason), for batch terminates
    # A recursive terminate: the instances this run sent a terminate to, with the member that reached them. A
    # job acts while its scan goes on, so a sub-orchestration the scan reaches after its parent (or one a
    # parent reaches after it) was already sent one: until a host records it Terminated it still looks
    # Running, and it would be sent another.
    reached: dict[str, str] = field(default_factory=dict)


Limited = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


def batchable(request: BulkRequest) -> bool:
    """Terminate and purge of single instances are done a batch at a time (one status read per batch)."""
    return (request.action in (BulkAction.TERMINATE, BulkAction.PURGE) and not request.recursive
            and not request.terminate_first)


@dataclass(frozen=True)
class Prepared:
    """What a batch needs before acting: current statuses (and history keys for a purge), read by range."""

    statuses: dict[str, bulk_ops.BatchStatus | None] | None = None
    history_keys: dict[str, list] | None = None


async def prepare_batch(ctx: Context, members: list[InstanceOutcome],
                        known: dict[str, bulk_ops.BatchStatus] | None = None) -> Prepared:
    """``known``: statuses the job's selection read moments ago; those of ``members`` are taken out of it
    (it holds only what is still to come), and used instead of a read when they cover every member."""
    fresh = [m.instance_id for m in members if m.outcome is Outcome.PENDING]
    if not (batchable(ctx.request) and fresh):
        return Prepared()
    scanned = [known.pop(i, None) for i in fresh] if known is not None else []
    try:
        if scanned and None not in scanned:
            current: dict[str, bulk_ops.BatchStatus | None] = dict(zip(fresh, scanned))
        else:
            # Mostly instances the action applies to: the others in the key range are not read.
            likely = [s for s in RuntimeStatus if s.is_terminal == (ctx.request.action is BulkAction.PURGE)]
            current = await bulk_ops.statuses(ctx.hub, fresh, likely=likely)
        keys = {}
        if ctx.request.action is BulkAction.PURGE:
            keys = await ctx.purger.history_keys([i for i in fresh if current[i] and current[i].status.is_terminal])
    except DurableError:
        return Prepared()  # a storage hiccup: act one by one, which reports per instance
    return Prepared(current, keys)


async def act_batch(ctx: Context, members: list[InstanceOutcome], prepared: Prepared,
                    limited: Limited) -> list[InstanceOutcome]:
    """Act on a batch of instances (outcomes in the same order); ``limited`` runs each operation within
    the job's rate and concurrency. Claimed (in-doubt) instances, and actions that cannot go by batch,
    go one by one through ``perform``."""

    async def one(member: InstanceOutcome) -> InstanceOutcome:
        iid = member.instance_id
        if member.outcome is Outcome.PENDING and prepared.statuses is not None and iid in prepared.statuses:
            return await _batched(ctx, iid, prepared.statuses[iid], (prepared.history_keys or {}).get(iid), limited)
        return await limited(lambda: perform(ctx, iid, in_doubt=member.outcome is Outcome.CLAIMED))

    return list(await asyncio.gather(*(one(m) for m in members)))


async def _batched(ctx: Context, instance_id: str, current: bulk_ops.BatchStatus | None, history, limited: Limited,
                   ) -> InstanceOutcome:
    req = ctx.request
    if current is None:
        return InstanceOutcome(instance_id, Outcome.SKIPPED, "it no longer exists")
    status = current.status
    try:
        if req.action is BulkAction.TERMINATE:
            if status.is_terminal:
                return InstanceOutcome(instance_id, Outcome.SKIPPED,
                                       f"Cannot terminate instance {instance_id!r}: it is already {status.value}.")
            await limited(lambda: ctx.hub.send_rendered(ctx.terminate_message, instance_id))
            return InstanceOutcome(instance_id, Outcome.DONE, TERMINATE_SENT)
        if not status.is_terminal:
            return InstanceOutcome(instance_id, Outcome.SKIPPED,
                                   f"Instance {instance_id!r} is {status.value}; only Completed, Failed, Terminated "
                                   "or Canceled instances can be purged.")
        result = await limited(lambda: ctx.purger.purge(current, history))
        if not result.instances_deleted:
            return InstanceOutcome(instance_id, Outcome.SKIPPED,
                                   "it no longer exists, or it was started again since it was selected")
        return InstanceOutcome(instance_id, Outcome.DONE, PURGED)
    except DurableError as e:
        return InstanceOutcome(instance_id, Outcome.FAILED, str(e))


async def perform(ctx: Context, instance_id: str, *, in_doubt: bool) -> InstanceOutcome:
    try:
        if in_doubt:
            verdict = await _check_in_doubt(ctx, instance_id)
            if verdict is not None:
                return verdict
        reason = await _act(ctx, instance_id)
        note = " (sent again after an interruption)" if in_doubt else ""
        return InstanceOutcome(instance_id, Outcome.DONE, reason + note)
    except InstanceNotFound:
        return InstanceOutcome(instance_id, Outcome.SKIPPED, "it no longer exists")
    except WrongState as e:
        return InstanceOutcome(instance_id, Outcome.SKIPPED, str(e))
    except WaitTimeout as e:
        return InstanceOutcome(instance_id, Outcome.FAILED, f"{e} Not purged; run the job again later.")
    except DurableError as e:
        return InstanceOutcome(instance_id, Outcome.FAILED, str(e))


async def _status(ctx: Context, instance_id: str) -> RuntimeStatus | None:
    try:
        return (await ctx.manager.status(instance_id, show_input=False)).runtime_status
    except InstanceNotFound:
        return None


async def _check_in_doubt(ctx: Context, instance_id: str) -> InstanceOutcome | None:
    action = ctx.request.action
    if action in (BulkAction.RAISE_EVENT, BulkAction.RESTART):
        return InstanceOutcome(instance_id, Outcome.FAILED,
                               f"in doubt: the job stopped while sending this {action.value}; it is not repeated "
                               "to avoid a duplicate. Check the instance and act on it by hand if needed.")
    status = await _status(ctx, instance_id)
    confirmed = None
    if action is BulkAction.PURGE:
        confirmed = status is None and "purged (confirmed after an interruption)"
    elif status is None:
        return InstanceOutcome(instance_id, Outcome.SKIPPED, "it no longer exists")
    elif action is BulkAction.TERMINATE:
        status = await _settle(ctx, instance_id, status, lambda s: s is None or s.is_terminal)
        confirmed = (status is None or status.is_terminal) and f"{status.value if status else 'gone'} (confirmed after an interruption)"
    elif action is BulkAction.SUSPEND:
        status = await _settle(ctx, instance_id, status, lambda s: s is None or s is RuntimeStatus.SUSPENDED)
        confirmed = status is RuntimeStatus.SUSPENDED and "Suspended (confirmed after an interruption)"
    elif action is BulkAction.REWIND:
        confirmed = status is not RuntimeStatus.FAILED and f"rewound: now {status.value} (confirmed after an interruption)"
    return InstanceOutcome(instance_id, Outcome.DONE, confirmed) if confirmed else None


IN_DOUBT_WAIT = 10.0  # seconds a message sent before the interruption gets to take effect


async def _settle(ctx: Context, instance_id: str, status: RuntimeStatus | None, done) -> RuntimeStatus | None:
    """Give a request that may have been sent before the interruption time to be carried out by a running
    host, so it is not sent twice; the status at the end of the wait."""
    deadline = time.monotonic() + IN_DOUBT_WAIT
    while not done(status) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = await _status(ctx, instance_id)
    return status


async def _act(ctx: Context, instance_id: str) -> str:
    m, req = ctx.manager, ctx.request
    action = req.action
    if action is BulkAction.TERMINATE:
        if not req.recursive:
            await m.terminate(instance_id, req.reason)
            return TERMINATE_SENT
        if instance_id in ctx.reached:
            return f"{TERMINATE_SENT} with {ctx.reached[instance_id]!r}"
        ctx.reached[instance_id] = instance_id
        top_down = parents_first(instance_id, await descendants(ctx.hub, instance_id))
        await m.terminate(instance_id, req.reason)
        # Those this run already sent one to (as members, or below another member) are not sent another.
        fresh = [iid for iid in top_down[1:] if iid not in ctx.reached]
        ctx.reached.update((iid, instance_id) for iid in fresh)
        reached = await _each_active(ctx, fresh, lambda iid: m.terminate(iid, req.reason))
        return f"{TERMINATE_SENT}, and to {reached} sub-orchestration(s)"
    if action is BulkAction.SUSPEND:
        await m.suspend(instance_id, req.reason)
        return "suspend sent"
    if action is BulkAction.RESUME:
        await m.resume(instance_id, req.reason)
        return "resume sent"
    if action is BulkAction.RAISE_EVENT:
        await m.raise_event(instance_id, req.event_name, req.event_data)
        return f"event {req.event_name!r} sent"
    if action is BulkAction.REWIND:
        await m.rewind(instance_id, req.reason)
        return "rewound"
    if action is BulkAction.RESTART:
        new_id = await m.restart(instance_id, new_instance_id=req.new_instance_id)
        return f"restarted as {new_id}"
    if action is BulkAction.PURGE:
        return await _purge(ctx, instance_id)
    raise ValueError(f"{action.value} is not a per-instance action")


async def _each_active(ctx: Context, ids: list[str], op) -> int:
    """Apply ``op`` to each id still active; how many it reached."""
    n = 0
    for iid in ids:
        try:
            await op(iid)
            n += 1
        except (InstanceNotFound, WrongState):
            pass  # already finished or purged: nothing to do for it
    return n


async def _purge(ctx: Context, instance_id: str) -> str:
    m, req = ctx.manager, ctx.request
    family = await descendants(ctx.hub, instance_id) if req.recursive else []
    if req.terminate_first:
        # Purging an instance a terminate message is still on its way to would leave that message
        # behind for a new instance with the same id: wait until the engine has recorded Terminated.
        for iid in parents_first(instance_id, family):
            status = await _status(ctx, iid)
            if status is not None and status.is_active:
                try:
                    await m.terminate(iid, req.reason or "terminated before purge")
                except (InstanceNotFound, WrongState):
                    pass
        for iid in [instance_id] + family:
            if await _status(ctx, iid) is not None:
                await m.wait_for_completion(iid, timeout=req.wait_seconds, retry_interval=0.5)
    purged = 0
    for child in family:  # children first: a parent is never gone while a child still points to it
        try:
            await m.purge_instance(child)
            purged += 1
        except InstanceNotFound:
            pass
    await m.purge_instance(instance_id)
    return f"{PURGED} with {purged} sub-orchestration(s)" if req.recursive else PURGED
