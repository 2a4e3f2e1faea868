"""Export of histories to a JSONL file (gzip optional), resumable like any job.

One line per instance: its status (as the HTTP API renders it) with
``historyEvents``. After each batch the file is flushed and synced, and its
length is checkpointed with the batch's outcomes; a resumed export first cuts
the file back to the checkpointed length, so a line is never written twice.
With gzip, each batch is its own gzip member (concatenated members are one
valid gzip file, which ``gzip -d`` and Python's ``gzip`` read whole).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from typing import Any

from ..errors import InstanceNotFound, InvalidInput
from .models import BulkRequest, InstanceOutcome, JobInfo, Outcome


class HistoryExport:
    def __init__(self, manager: Any, request: BulkRequest, info: JobInfo):
        self._manager = manager
        self._request = request
        self._path = request.path
        self.offset = int(info.params.get("offset") or 0)
        self._file = None

    def open(self) -> None:
        try:
            self._file = open(self._path, "r+b" if os.path.exists(self._path) else "w+b")
        except OSError as e:
            raise InvalidInput(f"Cannot write the export file {self._path!r}: {e.strerror}.") from e
        self._file.truncate(self.offset)  # drop what a stopped run wrote after its last checkpoint
        self._file.seek(self.offset)

    async def write(self, members: list[InstanceOutcome]) -> list[InstanceOutcome]:
        sem = asyncio.Semaphore(self._request.concurrency)

        async def fetch(iid: str):
            async with sem:
                try:
                    return await self._manager.status(iid, show_history=True, show_history_output=True,
                                                      show_input=True)
                except InstanceNotFound:
                    return None

        statuses = await asyncio.gather(*(fetch(m.instance_id) for m in members))
        lines, outcomes = [], []
        for member, status in zip(members, statuses):
            if status is None:
                outcomes.append(InstanceOutcome(member.instance_id, Outcome.SKIPPED, "it no longer exists"))
                continue
            body = status.to_json()
            lines.append(json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str))
            outcomes.append(InstanceOutcome(member.instance_id, Outcome.DONE,
                                            f"{len(body.get('historyEvents') or [])} events"))
        if lines:
            data = ("\n".join(lines) + "\n").encode("utf-8")
            if self._request.gzip:
                data = gzip.compress(data, compresslevel=6)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        self.offset = self._file.tell()
        return outcomes

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
