"""Output bindings: queue, table and blob outputs (``func.Out`` parameters or ``$return``).

A function sets ``func.Out`` values while it runs; once it returns, every set
value is written, in binding order. Names may use ``%Setting%`` (resolved at
start) and ``{expressions}`` resolved per invocation: ``{rand-guid}``,
``{DateTime}``, ``{sys.utcnow}``, ``{sys.randguid}`` and the trigger's data
(route and query values for HTTP, ``{queueTrigger}`` and JSON properties of
the message for queues).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Generic, Iterable, Mapping, TypeVar

import azure.functions as func

from durable_mgmt.errors import ConcurrencyConflict, InvalidSetting
from durable_mgmt.settings import AppSettings
from durable_mgmt.taskhub.primitives import create_if_missing
from durable_mgmt.taskhub.storage import map_storage_errors

from .connections import Connections, setting_name
from .errors import HostError
from .loader import FunctionInfo

T = TypeVar("T")
_EXPR = re.compile(r"\{([^{}]+)\}")
_NAME_KEYS = {"queue": "queueName", "table": "tableName", "blob": "path"}


class BindingError(HostError):
    """An output value cannot be written; the message names the function, the binding and why."""


class BindingInputError(BindingError):
    """The trigger's data (a route or query value, a message property) cannot go into an output's name.

    Found before the function runs (``OutputWriter.check``): an HTTP caller gets a 400, and nothing runs.
    """


class OutValue(func.Out, Generic[T]):
    """The ``func.Out`` the host passes for each output parameter."""

    def __init__(self) -> None:
        self._value: Any = None
        self.is_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> T:
        return self._value


def check_outputs(info: FunctionInfo, settings: AppSettings) -> list[str]:
    """Start-up problems of ``info``'s queue/table/blob outputs: missing names, unknown settings."""
    problems = []
    for b in info.outputs:
        key = _NAME_KEYS.get(b.get("type"))
        if key is None:
            continue
        if not b.get(key):
            problems.append(f"{info.describe()}: {b['type']} output {b['name']!r} has no {key}.")
            continue
        try:
            settings.expand(str(b[key]), f"{info.describe()}: {b['type']} output {b['name']!r} {key}")
            settings.connection_string(setting_name(b))
        except InvalidSetting as e:
            problems.append(str(e) if str(e).startswith(info.describe()) else f"{info.describe()}: {e}")
        if b["type"] == "blob" and "/" not in str(b[key]).strip("/"):
            problems.append(f"{info.describe()}: blob output {b['name']!r} path {b[key]!r} must be "
                            "'container/blob-name'.")
    return problems


class OutputWriter:
    """Writes output binding values to storage."""

    def __init__(self, connections: Connections, settings: AppSettings, *, message_encoding: str = "base64"):
        self._connections = connections
        self._settings = settings
        self._encoding = message_encoding
        self._created: set[tuple[str, str, str]] = set()

    def check(self, info: FunctionInfo, trigger_data: Mapping[str, Any]) -> None:
        """Every output name of ``info`` resolved for this invocation and checked, before the function runs:
        BindingInputError when the trigger's data cannot go into one."""
        for binding in info.outputs:
            # Only names with {expressions} depend on the invocation; fixed names fail where they always did.
            if binding.get("type") in _NAME_KEYS and _EXPR.search(str(binding[_NAME_KEYS[binding["type"]]])):
                self._target(info, binding, trigger_data)

    def _target(self, info: FunctionInfo, binding: Mapping[str, Any],
                trigger_data: Mapping[str, Any]) -> tuple[str, str, str]:
        """(name, where, shown): the resolved name, the context for messages, and the name as messages show
        it: the binding's own text when a setting went into it (setting values are never shown)."""
        kind = binding["type"]
        where = f"{info.describe()}: {kind} output {binding['name']!r}"
        template = str(binding[_NAME_KEYS[kind]])
        expanded = self._settings.expand(template, where)
        name = resolve(expanded, trigger_data, where)
        shown = name if expanded == template else template
        check_name(kind, name, shown, where)
        return name, where, shown

    async def write(self, info: FunctionInfo, binding: Mapping[str, Any], value: Any,
                    trigger_data: Mapping[str, Any]) -> None:
        kind = binding.get("type")
        if kind not in _NAME_KEYS or value is None:
            return
        name, where, shown = self._target(info, binding, trigger_data)
        setting = setting_name(binding)
        if kind == "queue":
            await self._queue(setting, name, value, where, shown)
        elif kind == "table":
            await self._table(setting, name, value, binding, where, shown)
        else:
            await self._blob(setting, name, value, where, shown)

    async def _queue(self, setting: str, name: str, value: Any, where: str, shown: str) -> None:
        queue = self._connections.queue_service(setting).get_queue_client(name)
        await self._ensure(("queue", setting, name), queue.create_queue, f"creating queue {shown!r}")
        for text in _messages(value, where):
            with map_storage_errors(f"{where}: sending a message to queue {shown!r}"):
                await queue.send_message(encode_queue_message(text, self._encoding))

    async def _table(self, setting: str, name: str, value: Any, binding: Mapping[str, Any], where: str,
                     shown: str) -> None:
        table = self._connections.table_service(setting).get_table_client(name)
        await self._ensure(("table", setting, name), table.create_table, f"creating table {shown!r}")
        for entity in _entities(value, binding, where):
            try:
                with map_storage_errors(f"{where}: inserting into table {shown!r}"):
                    await table.create_entity(entity)
            except ConcurrencyConflict:
                raise BindingError(f"{where}: table {shown!r} already has an entity with PartitionKey="
                                   f"{entity['PartitionKey']!r} and RowKey={entity['RowKey']!r}; a table output "
                                   "inserts new entities only.") from None

    async def _blob(self, setting: str, path: str, value: Any, where: str, shown: str) -> None:
        container_name, _, blob_name = path.strip("/").partition("/")
        container = self._connections.blob_service(setting).get_container_client(container_name)
        await self._ensure(("blob", setting, container_name), container.create_container,
                           f"creating container of {shown!r}")
        data = value.read() if hasattr(value, "read") else value
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise BindingError(f"{where}: a blob output takes str, bytes or a readable stream, "
                               f"not {type(value).__name__}.")
        with map_storage_errors(f"{where}: uploading blob {shown!r}"):
            await container.upload_blob(blob_name, bytes(data), overwrite=True)

    async def _ensure(self, key: tuple[str, str, str], create, what: str) -> None:
        if key in self._created:
            return
        await create_if_missing(create, what)
        self._created.add(key)


def encode_queue_message(text: str, encoding: str) -> str:
    """A queue message body as queue triggers decode it (host.json ``extensions.queues.messageEncoding``)."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii") if encoding == "base64" else text


_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_UNSAFE_IN_VALUE = re.compile(r"[/\\?#%\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_EXPRESSION_VALUE = 256


def check_name(kind: str, name: str, shown: str, where: str) -> None:
    """``name`` is a valid queue, table or blob path: BindingInputError naming the rule otherwise."""
    if kind == "queue" and not _QUEUE_NAME.fullmatch(name):
        raise BindingInputError(f"{where}: queue name {shown!r} is not valid: 3-63 lower-case letters, digits "
                                "and single dashes, starting and ending with a letter or digit.")
    if kind == "table" and not _TABLE_NAME.fullmatch(name):
        raise BindingInputError(f"{where}: table name {shown!r} is not valid: 3-63 letters and digits, "
                                "starting with a letter.")
    if kind == "blob":
        container, _, blob = name.strip("/").partition("/")
        if not _QUEUE_NAME.fullmatch(container):  # containers follow the queue rule
            raise BindingInputError(f"{where}: blob path {shown!r} does not start with a valid container name "
                                    "(3-63 lower-case letters, digits and single dashes).")
        segments = blob.split("/")
        if (not blob or len(blob) > 1024 or any(s in ("", ".", "..") for s in segments) or blob.endswith(".")
                or _UNSAFE_IN_VALUE.search(blob.replace("/", ""))):
            raise BindingInputError(f"{where}: blob path {shown!r} must be 'container/blob-name' with a blob name "
                                    "of 1-1024 characters: no empty, '.' or '..' segments, no trailing '.', "
                                    "no \\ ? # % or control characters.")


def resolve(text: str, data: Mapping[str, Any], where: str) -> str:
    """Replace ``{expressions}`` in a binding name with per-invocation values.

    A value taken from the trigger's data (a route or query value, a message property) comes from whoever
    sent the request or the message: it must be one plain name segment, so it can choose a name but never
    another folder, container or path (no / \\ ? # %, no '.' or '..', no control characters, at most
    ``MAX_EXPRESSION_VALUE`` characters). BindingInputError otherwise.
    """
    lower = {str(k).lower(): v for k, v in data.items()}

    def sub(m: re.Match) -> str:
        key = m.group(1).strip()
        k = key.lower()
        if k in ("rand-guid", "sys.randguid"):
            return str(uuid.uuid4())
        if k in ("datetime", "sys.utcnow"):
            return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
        if k in lower and lower[k] is not None:
            return _safe_value(key, str(lower[k]), where)
        available = ", ".join(sorted({"rand-guid", "DateTime", *map(str, data)}))
        raise BindingInputError(f"{where}: the binding expression {{{key}}} has no value in this invocation. "
                           f"Available: {available}.")

    return _EXPR.sub(sub, text)


def _messages(value: Any, where: str) -> Iterable[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, func.QueueMessage):
            yield item.get_body().decode("utf-8")
        elif isinstance(item, str):
            yield item
        elif isinstance(item, (bytes, bytearray)):
            try:
                yield bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise BindingError(f"{where}: queue messages must be UTF-8 text; got bytes that are not.") from None
        else:
            try:
                yield json.dumps(item)
            except TypeError:
                raise BindingError(f"{where}: cannot send a {type(item).__name__} as a queue message; give str, "
                                   "bytes, func.QueueMessage, or a JSON-serializable value.") from None


def _entities(value: Any, binding: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise BindingError(f"{where}: a table output takes a JSON object (or array) with PartitionKey "
                               "and RowKey, as text or a dict.") from None
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BindingError(f"{where}: each table entity must be a JSON object, not {type(item).__name__}.")
        entity = dict(item)
        entity.setdefault("PartitionKey", binding.get("partitionKey"))
        entity.setdefault("RowKey", binding.get("rowKey"))
        for key in ("PartitionKey", "RowKey"):
            if not isinstance(entity.get(key), str):
                raise BindingError(f"{where}: the entity has no {key} (a string); set it in the entity or "
                                   f"in the binding ({key[0].lower() + key[1:]}).")
        out.append(entity)
    return out


def _safe_value(key: str, value: str, where: str) -> str:
    shown = value if len(value) <= 60 else value[:60] + "..."
    if not value or len(value) > MAX_EXPRESSION_VALUE or value.strip(".") == "" or _UNSAFE_IN_VALUE.search(value):
        raise BindingInputError(
            f"{where}: the value {ascii(shown)} of {{{key}}} cannot go into the output's name: a value from the "
            f"request or message must be 1-{MAX_EXPRESSION_VALUE} characters, not '.' or '..', without "
            "/ \\ ? # % or control characters.")
    return value
