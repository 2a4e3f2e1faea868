"""Azure Storage accounts: connection strings, SDK clients, and error translation.

This is the only module that knows ``azure.core.exceptions``: every storage
call of the task hub layer runs inside ``map_storage_errors`` so that callers
above see only ``durable_mgmt.errors`` types.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlparse
from urllib.request import getproxies_environment

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from ..errors import ConcurrencyConflict, InvalidSetting, StorageRefused, StorageUnavailable

DEV_ACCOUNT = "devstoreaccount1"
# The well-known, public Azurite/Storage Emulator key: not a secret.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}


@dataclass(frozen=True)
class StorageAccount:
    """One storage account, parsed from a connection string.

    ``repr`` and ``describe()`` never show the key or a SAS token.
    """

    account_name: str
    blob_endpoint: str
    queue_endpoint: str
    table_endpoint: str
    connection_string: str = field(repr=False)
    is_development: bool = False
    # azure-core's raw_response_hook / raw_request_hook, called for every request: benchmarks count
    # requests with them, fault-injection tests make a chosen request fail before it is sent.
    response_hook: object = field(default=None, repr=False, compare=False)
    request_hook: object = field(default=None, repr=False, compare=False)

    @classmethod
    def from_connection_string(cls, connection_string: str, setting_name: str = "connection string") -> "StorageAccount":
        if not connection_string or not connection_string.strip():
            raise InvalidSetting(
                f"The {setting_name} is empty. Set it to an Azure Storage connection string, "
                "or to UseDevelopmentStorage=true for the local emulator (Azurite)."
            )
        parts = _parse(connection_string, setting_name)
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            return cls.development()
        name = parts.get("accountname")
        protocol = parts.get("defaultendpointsprotocol", "https")
        suffix = parts.get("endpointsuffix", "core.windows.net")
        endpoints = {}
        for service in ("blob", "queue", "table"):
            explicit = parts.get(f"{service}endpoint")
            if explicit:
                endpoints[service] = explicit.rstrip("/")
            elif name:
                endpoints[service] = f"{protocol}://{name}.{service}.{suffix}"
            else:
                raise InvalidSetting(
                    f"The {setting_name} has neither AccountName nor {service.capitalize()}Endpoint; "
                    "it must name the storage account (AccountName=...;AccountKey=...) or give each endpoint."
                )
        for service, url in endpoints.items():
            try:
                parsed = urlparse(url)
                parsed.port  # noqa: B018 - raises on a malformed port
                valid = parsed.scheme in ("http", "https") and bool(parsed.hostname)
            except ValueError:
                valid = False
            if not valid:
                raise InvalidSetting(f"The {setting_name} has a malformed {service.capitalize()}Endpoint; it must be "
                                     "a URL like https://account.table.core.windows.net.")
        if not name:
            name = _account_from_endpoint(endpoints["table"])
        is_dev = name == DEV_ACCOUNT
        return cls(name, endpoints["blob"], endpoints["queue"], endpoints["table"], connection_string, is_dev)

    @classmethod
    def development(cls, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> "StorageAccount":
        ports = {**DEV_PORTS, **(ports or {})}
        ep = {s: f"http://{host}:{p}/{DEV_ACCOUNT}" for s, p in ports.items()}
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={ep['blob']};QueueEndpoint={ep['queue']};TableEndpoint={ep['table']};"
        )
        return cls(DEV_ACCOUNT, ep["blob"], ep["queue"], ep["table"], conn, True)

    def endpoint_ports(self) -> dict[str, tuple[str, int]]:
        """Host and port of each service endpoint (used to find or start Azurite)."""
        out = {}
        for service, url in (("blob", self.blob_endpoint), ("queue", self.queue_endpoint), ("table", self.table_endpoint)):
            u = urlparse(url)
            out[service] = (u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80))
        return out

    def describe(self) -> str:
        """A safe one-line description: account and endpoints, never credentials."""
        if self.is_development:
            host, port = self.endpoint_ports()["table"]
            return f"{self.account_name} (Azurite at {host}, tables on port {port})"
        return f"{self.account_name} ({urlparse(self.table_endpoint).hostname})"

    # SDK clients ---------------------------------------------------------------

    def with_response_hook(self, hook) -> "StorageAccount":
        from dataclasses import replace

        return replace(self, response_hook=hook)

    def with_request_hook(self, hook) -> "StorageAccount":
        from dataclasses import replace

        return replace(self, request_hook=hook)

    def _client_options(self) -> dict:
        # aiohttp with trust_env looks up ~/.netrc and the proxy variables in a worker thread on every
        # request: two thread hops per call, and every call stalls while the loop's default executor is
        # busy. Proxies come from the environment only; with none set, there is nothing to look up.
        options: dict = {"use_env_settings": bool(getproxies_environment())}
        if self.response_hook:
            options["raw_response_hook"] = self.response_hook
        if self.request_hook:
            options["raw_request_hook"] = self.request_hook
        return options

    def table_service(self):
        from azure.data.tables.aio import TableServiceClient

        return TableServiceClient.from_connection_string(self.connection_string, **self._client_options())

    def queue_service(self):
        from azure.storage.queue.aio import QueueServiceClient

        return QueueServiceClient.from_connection_string(self.connection_string, **self._client_options())

    def blob_service(self):
        from azure.storage.blob.aio import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **self._client_options())


def _parse(connection_string: str, setting_name: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    items = connection_string.strip().strip(";").split(";")
    for number, item in enumerate(items, 1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            # Never quote any of it: the item could be (part of) a secret.
            raise InvalidSetting(
                f"The {setting_name} is not a connection string: part {number} of {len(items)} (between ';') "
                "has no '='. Expected Key=Value pairs separated by ';' (e.g. AccountName=...;AccountKey=...)."
            )
        parts[key.strip().lower()] = value.strip()
    return parts


def _account_from_endpoint(url: str) -> str:
    u = urlparse(url)
    path = u.path.strip("/")
    if path:  # emulator style: http://127.0.0.1:10002/devstoreaccount1
        return path.split("/")[0]
    return (u.hostname or "").split(".")[0]


def status_of(err: BaseException) -> int | None:
    return getattr(err, "status_code", None)


@contextlib.contextmanager
def map_storage_errors(what: str) -> Iterator[None]:
    """Translate Azure SDK errors into durable_mgmt errors, once, at the boundary.

    ``what`` says what was being done ("reading instance 'abc'"); it appears in
    the message so the person reading it knows where it failed. Callers that
    expect a particular status (404 on a missing row, 409 on an existing
    queue) catch it *inside* this block and handle it themselves.
    """
    try:
        yield
    except (ConcurrencyConflict, StorageUnavailable):
        raise
    except ClientAuthenticationError as e:
        raise StorageUnavailable(
            f"Azure Storage refused the credentials while {what}: check the account key or SAS in the connection setting."
        ) from e
    except HttpResponseError as e:
        code = status_of(e)
        if code in (409, 412):
            raise ConcurrencyConflict(f"Conflicting update while {what} (HTTP {code}); another writer got there first.") from e
        if code is not None and 400 <= code < 500 and code not in (401, 403, 404, 408, 429):
            # The request itself was refused (a value storage does not accept): not an outage, so not a 503.
            error_code = getattr(e, "error_code", None) or getattr(e, "reason", None) or ""
            raise StorageRefused(f"Azure Storage refused the request while {what}: HTTP {code} {error_code}. "
                                 "A value in it is not one storage accepts (too large, or not allowed in a "
                                 "key or name); nothing was written by that request.") from e
        reason = getattr(e, "reason", None) or type(e).__name__
        raise StorageUnavailable(f"Azure Storage failed while {what}: HTTP {code} {reason}.") from e
    except (ServiceRequestError, ServiceResponseError, ConnectionError, OSError) as e:
        raise StorageUnavailable(
            f"Azure Storage is unreachable while {what}: {type(e).__name__}. "
            "Is Azurite running, or is the connection setting right?"
        ) from e
    except AzureError as e:
        raise StorageUnavailable(f"Azure Storage failed while {what}: {type(e).__name__}.") from e


__all__ = ["StorageAccount", "map_storage_errors", "status_of", "ResourceNotFoundError", "HttpResponseError"]
