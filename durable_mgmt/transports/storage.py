"""The storage transport: requests carried out on the task hub in Azure Storage."""

from __future__ import annotations

from typing import Any, AsyncIterator

from .. import requests as r
from ..errors import InstanceNotFound, InvalidSetting
from ..models import (EntityState, InstanceStatus, ManagementUrls, Page, PurgeResult, RuntimeStatus,
                      parse_json_text)
from ..settings import DEFAULT_CONNECTION_NAME
from ..taskhub import StorageAccount, TaskHub, TaskHubClient
from ..taskhub.events import HistoryEvent
from .base import Transport


class StorageTransport(Transport):
    """Works on the task hub directly: no host needed (a host must run for instances to progress).

    ``webhook_base`` (e.g. ``http://localhost:7071/runtime/webhooks/durabletask``)
    and ``webhook_query`` (``taskHub=..&connection=..[&code=..]``) are only
    needed to hand out management URLs.
    """

    description = "task hub in storage"

    def __init__(self, hub: TaskHub, *, webhook_base: str | None = None, webhook_query: str | None = None,
                 owns_hub: bool = False):
        self.hub = hub
        self.client = TaskHubClient(hub)
        self.webhook_base = webhook_base
        self.webhook_query = webhook_query or f"taskHub={hub.name}&connection={DEFAULT_CONNECTION_NAME}"
        self._owns_hub = owns_hub

    @classmethod
    async def connect(cls, account: StorageAccount, hub_name: str, *, partition_count: int | None = None,
                      partition_count_configured: bool = False, **kwargs: Any) -> "StorageTransport":
        """Open the hub ``hub_name`` of ``account`` (closed with the transport). ``partition_count``: the
        app's configured count (host.json), used when ``partition_count_configured``."""
        hub = (TaskHub(account, hub_name) if partition_count is None else
               TaskHub(account, hub_name, partition_count, partition_count_configured=partition_count_configured))
        await hub.open()
        return cls(hub, owns_hub=True, **kwargs)

    @property
    def warnings(self) -> tuple[str, ...]:
        warning = self.hub.partition_count_warning
        return (warning,) if warning else ()

    async def aclose(self) -> None:
        if self._owns_hub:
            await self.hub.close()

    # --- start ---------------------------------------------------------------

    async def start(self, input: r.StartInstance) -> str:
        return await self.client.start(input.name, instance_id=input.instance_id, input_json=input.input_json)

    async def restart(self, input: r.RestartInstance) -> str:
        return await self.client.restart(input.instance_id, new_instance_id=input.new_instance_id)

    # --- read ----------------------------------------------------------------

    async def status(self, input: r.GetStatus) -> InstanceStatus:
        return await self.client.get_status(input.instance_id, show_input=input.show_input,
                                            show_output=input.show_output, show_history=input.show_history,
                                            show_history_output=input.show_history_output)

    async def get_entity(self, input: r.GetEntity) -> EntityState:
        try:
            status = await self.client.get_status(input.instance_id, show_input=True, show_output=False)
        except InstanceNotFound:
            return EntityState(input.instance_id, False)
        # The entity's instance input is its scheduler state: {"exists": ..., "state": "<JSON text>", ...}.
        scheduler = status.input if isinstance(status.input, dict) else {}
        if not scheduler.get("exists", False):
            return EntityState(input.instance_id, False)
        return EntityState(input.instance_id, True, parse_json_text(scheduler.get("state")))

    async def history(self, input: r.GetHistory) -> list[HistoryEvent]:
        return await self.client.get_history(input.instance_id)

    async def page(self, input: r.QueryInstances) -> Page[InstanceStatus]:
        return await self.client.query(input.query)

    async def pages(self, input: r.QueryInstances) -> AsyncIterator[Page[InstanceStatus]]:
        async for page in self.client.pages(input.query):  # the next page is read while this one is handled
            yield page

    async def count(self, input: r.CountInstances) -> dict[RuntimeStatus, int]:
        return await self.client.count(input.query)

    async def management_urls(self, input: r.GetManagementUrls) -> ManagementUrls:
        if not self.webhook_base:
            raise InvalidSetting(
                "Management URLs need the address of the host serving the management API: create the "
                "StorageTransport with webhook_base='http://<host>/runtime/webhooks/durabletask'.")
        return ManagementUrls.build(self.webhook_base, input.instance_id, self.webhook_query)

    # --- steer ---------------------------------------------------------------

    async def terminate(self, input: r.TerminateInstance) -> None:
        await self.client.terminate(input.instance_id, input.reason)

    async def raise_event(self, input: r.RaiseEvent) -> None:
        await self.client.raise_event(input.instance_id, input.event_name, data_json=input.data_json)

    async def suspend(self, input: r.SuspendInstance) -> None:
        await self.client.suspend(input.instance_id, input.reason)

    async def resume(self, input: r.ResumeInstance) -> None:
        await self.client.resume(input.instance_id, input.reason)

    async def rewind(self, input: r.RewindInstance) -> list[str]:
        return await self.client.rewind(input.instance_id, input.reason)

    # --- purge and the hub ---------------------------------------------------

    async def purge_instance(self, input: r.PurgeInstance) -> PurgeResult:
        return await self.client.purge_instance(input.instance_id)

    async def purge(self, input: r.PurgeInstances) -> PurgeResult:
        return await self.client.purge(input.query, progress=input.progress)

    async def hub_exists(self, input: r.HubExists) -> bool:
        return await self.hub.exists()

    async def delete_hub(self, input: r.DeleteHub) -> None:
        await self.client.delete_hub()
