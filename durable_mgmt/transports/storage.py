"""The storage transport: requests carried out on the task hub in Azure Storage."""

from __future__ import annotations

from typing import Any

from .. import requests as r
from ..errors import InvalidSetting
from ..models import ManagementUrls
from ..settings import DEFAULT_CONNECTION_NAME
from ..taskhub import StorageAccount, TaskHub, TaskHubClient


class StorageTransport:
    """Works on the task hub directly: no host needed (a host must run for instances to progress).

    ``webhook_base`` (e.g. ``http://localhost:7071/runtime/webhooks/durabletask``)
    and ``webhook_query`` (``taskHub=..&connection=..[&code=..]``) are only
    needed to hand out management URLs.
    """

    def __init__(self, hub: TaskHub, *, webhook_base: str | None = None, webhook_query: str | None = None,
                 owns_hub: bool = False):
        self.hub = hub
        self.client = TaskHubClient(hub)
        self.webhook_base = webhook_base
        self.webhook_query = webhook_query or f"taskHub={hub.name}&connection={DEFAULT_CONNECTION_NAME}"
        self._owns_hub = owns_hub

    @classmethod
    async def connect(cls, account: StorageAccount, hub_name: str, **kwargs: Any) -> "StorageTransport":
        hub = TaskHub(account, hub_name)
        await hub.open()
        return cls(hub, owns_hub=True, **kwargs)

    async def aclose(self) -> None:
        if self._owns_hub:
            await self.hub.close()

    async def execute(self, request: r.Request) -> Any:
        c = self.client
        match request:
            case r.StartInstance():
                return await c.start(request.name, instance_id=request.instance_id, input_json=request.input_json)
            case r.GetStatus():
                return await c.get_status(request.instance_id, show_input=request.show_input,
                                          show_history=request.show_history,
                                          show_history_output=request.show_history_output)
            case r.QueryInstances():
                return await c.query(request.query)
            case r.TerminateInstance():
                return await c.terminate(request.instance_id, request.reason)
            case r.RaiseEvent():
                return await c.raise_event(request.instance_id, request.event_name, data_json=request.data_json)
            case r.SuspendInstance():
                return await c.suspend(request.instance_id, request.reason)
            case r.ResumeInstance():
                return await c.resume(request.instance_id, request.reason)
            case r.RewindInstance():
                await c.rewind(request.instance_id, request.reason)
                return None
            case r.RestartInstance():
                return await c.restart(request.instance_id, new_instance_id=request.new_instance_id)
            case r.PurgeInstance():
                return await c.purge_instance(request.instance_id)
            case r.PurgeInstances():
                return await c.purge(request.query)
            case r.GetManagementUrls():
                if not self.webhook_base:
                    raise InvalidSetting(
                        "Management URLs need the address of the host serving the management API: create the "
                        "StorageTransport with webhook_base='http://<host>/runtime/webhooks/durabletask'.")
                return ManagementUrls.build(self.webhook_base, request.instance_id, self.webhook_query)
        raise TypeError(f"unknown request {type(request).__name__}")
