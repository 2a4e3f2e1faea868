"""The storage primitives every layer above the task hub uses instead of catching SDK errors itself.

Each absorbs only its one expected answer (409 "exists", 404 "not found");
anything else, an authentication failure above all, is raised as our error.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace

import pytest

from durable_mgmt.errors import StorageUnavailable
from durable_mgmt.taskhub.primitives import create_if_missing, delete_if_exists, get_or_none, list_or_none, read_blob
from durable_mgmt.taskhub.storage import DEV_KEY


def _wrong_key(account):
    bad = base64.b64encode(b"not-the-key" * 6).decode()
    assert bad != DEV_KEY
    return replace(account, connection_string=account.connection_string.replace(DEV_KEY, bad))


async def test_create_get_delete_report_what_happened(account):
    name = f"prim{uuid.uuid4().hex[:12]}"
    async with account.blob_service() as blobs:
        container = blobs.get_container_client(name)
        blob = container.get_blob_client("a.json")
        assert await read_blob(blob, "reading a missing container") is None
        assert await list_or_none(container.list_blobs, "listing a missing container") is None
        assert await create_if_missing(container.create_container, "creating") is True
        assert await create_if_missing(container.create_container, "creating again") is False
        assert await list_or_none(container.list_blobs, "listing") == []
        assert await create_if_missing(lambda: blob.upload_blob(b"{}", overwrite=False), "writing") is True
        assert await create_if_missing(lambda: blob.upload_blob(b"[1]", overwrite=False), "writing again") is False
        assert await read_blob(blob, "reading") == b"{}"  # the first write was kept
        assert await delete_if_exists(container.delete_container, "deleting") is True
        assert await delete_if_exists(container.delete_container, "deleting again") is False


async def test_an_authentication_failure_is_never_taken_for_exists_or_missing(account):
    name = f"prim{uuid.uuid4().hex[:12]}"
    async with _wrong_key(account).blob_service() as blobs:
        container = blobs.get_container_client(name)
        calls = [
            lambda: create_if_missing(container.create_container, "creating container X"),
            lambda: get_or_none(container.get_container_properties, "reading container X"),
            lambda: read_blob(container.get_blob_client("a"), "reading container X"),
            lambda: delete_if_exists(container.delete_container, "deleting container X"),
        ]
        for call in calls:
            with pytest.raises(StorageUnavailable) as e:
                await call()
            assert "container X" in str(e.value) and "403" in str(e.value)
    async with account.blob_service() as blobs:  # and nothing was created with the wrong key
        assert await get_or_none(blobs.get_container_client(name).get_container_properties, "reading") is None
