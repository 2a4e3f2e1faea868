"""Function, host and system keys, kept where the Functions host keeps them.

Keys are generated once and stored as JSON blobs in the ``azure-webjobs-secrets``
container of the app's storage account, in the Functions host's layout:
``{hostId}/host.json`` (master key, host function keys, system keys such as
``durabletask_extension``) and ``{hostId}/{function}.json`` (function keys).
A restart reads them back, so URLs handed out keep working.

Key values never go to the log: ``HostKeys.__repr__`` hides them and callers
print only key names and where they are stored.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable


from durable_mgmt.taskhub.primitives import create_if_missing, read_blob
from durable_mgmt.taskhub.storage import map_storage_errors

SECRETS_CONTAINER = "azure-webjobs-secrets"
DURABLE_SYSTEM_KEY = "durabletask_extension"
DEFAULT_KEY_NAME = "default"


def new_key() -> str:
    # 40 random bytes, URL-safe: usable as ?code= without encoding.
    return secrets.token_urlsafe(40)


@dataclass(frozen=True)
class HostKeys:
    """Every key of one host. ``authorizes`` is the only way callers use values."""

    master: str = field(repr=False)
    function_keys: dict[str, str] = field(repr=False)      # host-level keys valid for every function
    system_keys: dict[str, str] = field(repr=False)
    per_function: dict[str, dict[str, str]] = field(repr=False)

    @property
    def durable_system_key(self) -> str:
        return self.system_keys[DURABLE_SYSTEM_KEY]

    def authorizes(self, level: str, key: str | None, *, function: str | None = None,
                   system_key: str | None = None) -> bool:
        """May a request with ``key`` call something at auth ``level``?

        ``anonymous``: always. ``function``: the function's own keys, any host
        key, or the master key. ``admin``: the master key only. ``system``
        (the durable webhooks): the named system key or the master key.
        """
        if level == "anonymous":
            return True
        if not key:
            return False
        if _equal(key, self.master):
            return True
        if level == "function":
            mine = self.per_function.get((function or "").lower(), {})
            return any(_equal(key, k) for k in (*mine.values(), *self.function_keys.values()))
        if level == "system":
            wanted = self.system_keys.get(system_key or DURABLE_SYSTEM_KEY)
            return wanted is not None and _equal(key, wanted)
        return False


def _equal(a: str, b: str) -> bool:
    # A header may carry bytes that are not UTF-8 (aiohttp keeps them as surrogate escapes): such a key
    # matches nothing, and must not fail the comparison.
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


async def load_or_create_keys(blob_service, host_id: str, functions: Iterable[str]) -> HostKeys:
    """Read this host's keys, creating whatever is missing (once: concurrent starts agree)."""
    container = blob_service.get_container_client(SECRETS_CONTAINER)
    await create_if_missing(container.create_container, f"creating container {SECRETS_CONTAINER!r}")
    host = await _load_or_create(container, f"{host_id}/host.json", _new_host_secrets)
    per_function = {}
    for name in functions:
        doc = await _load_or_create(container, f"{host_id}/{name.lower()}.json", _new_function_secrets)
        per_function[name.lower()] = _named(doc.get("keys"))
    system = _named(host.get("systemKeys"))
    if DURABLE_SYSTEM_KEY not in system:
        # A secrets file written by a host without the durable extension: add the system key once.
        host["systemKeys"] = [*host.get("systemKeys", []), _key(DURABLE_SYSTEM_KEY)]
        await _save(container, f"{host_id}/host.json", host)
        system = _named(host["systemKeys"])
    return HostKeys(host["masterKey"]["value"], _named(host.get("functionKeys")), system, per_function)


async def _load_or_create(container, blob_name: str, make) -> dict[str, Any]:
    blob = container.get_blob_client(blob_name)
    what = f"reading {SECRETS_CONTAINER}/{blob_name}"
    content = await read_blob(blob, what)
    if content is not None:
        return json.loads(content)
    doc = make()
    if await create_if_missing(lambda: blob.upload_blob(json.dumps(doc, indent=2), overwrite=False), what):
        return doc
    return json.loads(await read_blob(blob, what) or b"{}")  # another host created it first: use theirs


async def _save(container, blob_name: str, doc: dict[str, Any]) -> None:
    with map_storage_errors(f"writing {SECRETS_CONTAINER}/{blob_name}"):
        await container.get_blob_client(blob_name).upload_blob(json.dumps(doc, indent=2), overwrite=True)


def _key(name: str) -> dict[str, Any]:
    return {"name": name, "value": new_key(), "encrypted": False}


def _new_host_secrets() -> dict[str, Any]:
    return {"masterKey": _key("master"), "functionKeys": [_key(DEFAULT_KEY_NAME)],
            "systemKeys": [_key(DURABLE_SYSTEM_KEY)], "source": "runtime", "decryptionKeyId": ""}


def _new_function_secrets() -> dict[str, Any]:
    return {"keys": [_key(DEFAULT_KEY_NAME)], "source": "runtime", "decryptionKeyId": ""}


def _named(keys: Any) -> dict[str, str]:
    return {k["name"]: k["value"] for k in (keys or []) if isinstance(k, dict) and "name" in k and "value" in k}
