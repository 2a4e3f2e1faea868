"""One queue message for many instances, encoded once.

A bulk terminate sends the same ExecutionTerminated message (one reason) to thousands of instances.
Encoding each afresh (a TaskMessage, its event, the envelope as dicts, then ``json.dumps``) was the
largest part of a job's own work per instance: about 34 of its ~200 us beyond the SDK's send (profiled
2026-11-30). A template is the text ``TaskMessage.encode`` writes for a probe message, cut where each
send's own values go: the activity id, the event's time, the instance id and the sequence number.
What it renders is what ``encode`` writes for that message, byte for byte (tests/test_message_template.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from .events import EventType, event
from .messages import TaskMessage, visibility_delay
from .timefmt import to_iso, utcnow

# Probe values, each found exactly once in the probe's text (with its key) or the template is refused.
_PROBE_INSTANCE = "\x00instance\x00"
_PROBE_ACTIVITY = "\x00activity\x00"
_PROBE_TIME = datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=timezone.utc)
_PROBE_SEQUENCE = 987654321012


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # as TaskMessage.encode writes every value


class TemplateUnsupported(ValueError):
    """The message cannot be sent from a template (a delayed one, or its values hide the probe's)."""


class MessageTemplate:
    """``event(event_type, **props)`` sent by a client to any instance: ``render(instance_id, ...)`` is the JSON
    ``TaskMessage(event(...), instance_id, None).encode()`` gives, with that send's sequence number."""

    def __init__(self, event_type: EventType, **props: Any) -> None:
        self.event_type, self.props = event_type, props
        probe = self.message(_PROBE_INSTANCE, timestamp=_PROBE_TIME, activity_id=_PROBE_ACTIVITY)
        if visibility_delay(probe.event):
            raise TemplateUnsupported(f"{event_type.name} with these properties is sent with a delay")
        probe.sequence_number = _PROBE_SEQUENCE
        text = probe.encode()
        slots = {"activity": '"ActivityId":' + _json(_PROBE_ACTIVITY),
                 "time": '"Timestamp":' + _json(to_iso(_PROBE_TIME)),
                 "instance": '"InstanceId":' + _json(_PROBE_INSTANCE),
                 "sequence": f'"SequenceNumber":{_PROBE_SEQUENCE}'}
        found = []
        for slot, marker in slots.items():
            if text.count(marker) != 1:
                raise TemplateUnsupported(f"the probe's {slot} is not found exactly once in the message")
            at = text.index(marker)
            found.append((at, slot, marker))
        found.sort()
        # Literal text up to each value (its key included), then the value's slot; the tail after the last.
        self._parts: list[tuple[str, str]] = []
        start = 0
        for at, slot, marker in found:
            key_end = at + marker.index(":") + 1
            self._parts.append((text[start:key_end], slot))
            start = at + len(marker)
        self._tail = text[start:]

    def message(self, instance_id: str, *, timestamp: datetime | None = None,
                activity_id: str | None = None) -> TaskMessage:
        """The TaskMessage this template stands for (sent whole when its rendered text would be too large)."""
        ev = event(self.event_type, timestamp=timestamp, **self.props)
        if activity_id is None:
            return TaskMessage(ev, instance_id, None)
        return TaskMessage(ev, instance_id, None, activity_id=activity_id)

    def render(self, instance_id: str, *, sequence_number: int, activity_id: str | None = None,
               now: datetime | None = None) -> str:
        values = {"activity": '"%s"' % uuid.uuid4() if activity_id is None else _json(activity_id),
                  "time": '"%s"' % to_iso(now or utcnow()),
                  "instance": _json(instance_id),
                  "sequence": str(sequence_number)}
        return "".join([text + values[slot] for text, slot in self._parts]) + self._tail
