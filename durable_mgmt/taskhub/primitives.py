"""Storage calls whose "already exists" or "not found" answer is a normal outcome, mapped once.

Every other layer (the rest of ``durable_mgmt`` and all of ``funchost``) uses
these instead of catching ``azure.core.exceptions`` itself, so the SDK's error
types stay inside this package and each idiom is written once:

- ``create_if_missing``: create a table, queue, container or blob; an existing
  one is success (HTTP 409 "already exists").
- ``get_or_none`` / ``list_or_none`` / ``read_blob``: read something that may
  not be there (HTTP 404 is ``None``).
- ``delete_if_exists``: delete something that may already be gone.

Only the one expected status is absorbed: any other failure, an authentication
failure above all, goes through ``map_storage_errors`` and is raised as a
``durable_mgmt.errors`` type that names ``what`` was being done.
"""

from __future__ import annotations

from typing import Any, AsyncIterable, Awaitable, Callable, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from .storage import map_storage_errors, status_of

T = TypeVar("T")


async def create_if_missing(create: Callable[[], Awaitable[Any]], what: str) -> bool:
    """Run ``create()``; True if it made something new, False if it already existed."""
    with map_storage_errors(what):
        try:
            await create()
            return True
        except ResourceExistsError:
            return False


async def get_or_none(read: Callable[[], Awaitable[T]], what: str) -> T | None:
    """``await read()``, or None when the thing read (or its container) does not exist."""
    with map_storage_errors(what):
        try:
            return await read()
        except ResourceNotFoundError:
            return None


async def list_or_none(items: Callable[[], AsyncIterable[T]], what: str) -> list[T] | None:
    """Every item of the pager ``items()`` returns, or None when the table/queue/container does not exist."""

    async def collect() -> list[T]:
        return [item async for item in items()]

    return await get_or_none(collect, what)


async def delete_if_exists(delete: Callable[[], Awaitable[Any]], what: str, *, leased_is_kept: bool = False) -> bool:
    """Run ``delete()``; True if it deleted something, False if it was already gone.

    With ``leased_is_kept``, a container or blob someone holds a lease on (HTTP
    412 without that lease id) is left in place and also gives False.
    """
    with map_storage_errors(what):
        try:
            await delete()
            return True
        except ResourceNotFoundError:
            return False
        except HttpResponseError as e:
            if leased_is_kept and status_of(e) == 412:
                return False
            raise


async def read_blob(blob_client, what: str) -> bytes | None:
    """The whole content of a blob, or None when the blob or its container does not exist."""

    async def download() -> bytes:
        return await (await blob_client.download_blob()).readall()

    return await get_or_none(download, what)


__all__ = ["create_if_missing", "get_or_none", "list_or_none", "delete_if_exists", "read_blob"]
