"""The URLs of the durable management API, and the client binding JSON built from them.

One place builds every management URL, so the check-status payload of the
webhooks, ``create_check_status_response`` in user code and the start-up
banner agree. The shapes follow the extension's ``HttpApiHandler``:
``{base}/instances/{id}?taskHub=..&connection=..&code=..`` and so on.

The client binding JSON is what the SDK's ``DurableOrchestrationClient``
parses: ``managementUrls`` with the placeholder id ``INSTANCEID`` (the SDK
substitutes the real id and the caller's origin), ``creationUrls``, and
``rpcBaseUrl`` (with its trailing ``/``) where the SDK sends every call: this
host's internal loopback endpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

from durable_mgmt.models import ManagementUrls
from durable_mgmt.settings import DEFAULT_CONNECTION_NAME

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask"
INSTANCE_PLACEHOLDER = "INSTANCEID"


@dataclass(frozen=True)
class DurableLinks:
    public_origin: str          # e.g. http://localhost:7071 (no trailing slash)
    rpc_origin: str             # e.g. http://127.0.0.1:45123
    hub_name: str
    system_key: str | None = None
    connection: str = DEFAULT_CONNECTION_NAME
    # A per-process secret path segment of the internal endpoint: only this process's client functions
    # (handed rpcBaseUrl) can call it, not any local user who finds the port.
    rpc_secret: str = ""

    def __repr__(self) -> str:  # keys and the secret never go to a log through a repr
        return f"DurableLinks(public_origin={self.public_origin!r}, hub_name={self.hub_name!r})"

    @property
    def webhook_base(self) -> str:
        return self.public_origin + WEBHOOK_PATH

    @property
    def rpc_base_url(self) -> str:
        return f"{self.rpc_origin}{RPC_PATH}/{self.rpc_secret + '/' if self.rpc_secret else ''}"

    def query(self, hub: str | None = None, connection: str | None = None) -> str:
        q = f"taskHub={quote(hub or self.hub_name, safe='')}&connection={quote(connection or self.connection, safe='')}"
        if self.system_key:
            q += f"&code={quote(self.system_key, safe='')}"
        return q

    def management_payload(self, instance_id: str, *, origin: str | None = None, hub: str | None = None,
                           connection: str | None = None, quote_id: bool = True,
                           return_500_on_failure: bool = False) -> dict[str, str]:
        """The check-status body: ``id`` and the URL of each management operation."""
        base = (origin.rstrip("/") if origin else self.public_origin) + WEBHOOK_PATH
        payload = ManagementUrls.build(base, instance_id, self.query(hub, connection), quote_id=quote_id).to_json()
        if return_500_on_failure:
            payload["statusQueryGetUri"] += "&returnInternalServerErrorOnFailure=true"
        return payload

    def creation_urls(self, hub: str | None = None, connection: str | None = None) -> dict[str, str]:
        prefix = f"{self.webhook_base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        q = self.query(hub, connection)
        return {
            "createNewInstancePostUri": f"{prefix}?{q}",
            "createAndWaitOnNewInstancePostUri": f"{prefix}?timeout={{timeoutInSeconds}}"
                                                 f"&pollingInterval={{intervalInSeconds}}&{q}",
        }

    def client_binding(self, binding: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The durable client binding's value (as a dict) for a ``durableClient`` binding."""
        binding = binding or {}
        hub = binding.get("taskHub") or self.hub_name
        connection = binding.get("connectionName") or self.connection
        management = self.management_payload(INSTANCE_PLACEHOLDER, hub=hub, connection=connection, quote_id=False)
        return {
            "taskHubName": hub,
            "creationUrls": self.creation_urls(hub, connection),
            "managementUrls": management,
            "baseUrl": self.webhook_base,
            "requiredQueryStringParameters": self.query(hub, connection),
            "rpcBaseUrl": self.rpc_base_url,
            "httpBaseUrl": "",
            "maxGrpcMessageSizeInBytes": 0,
            "grpcHttpClientTimeout": "00:01:40",
        }

    def client_json(self, binding: Mapping[str, Any] | None = None) -> str:
        """The JSON string the SDK's client wrapper receives (by keyword)."""
        return json.dumps(self.client_binding(binding))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
