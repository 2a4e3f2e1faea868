"""A bulk terminate encodes its message once (taskhub.message_template) and puts in each instance's values:
what it sends must be what TaskMessage.encode writes for that message, byte for byte (the conformance of
that encoding is pinned in tests/conformance), on both hub generations, routed by the hub's own
partition count. And the event time it writes is as Newtonsoft writes a UTC DateTime (timefmt.to_iso)."""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt import BulkRequest, InstanceManager, JobState
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.events import EventType, event
from durable_mgmt.taskhub.message_template import MessageTemplate, TemplateUnsupported
from durable_mgmt.taskhub.messages import MAX_INLINE_MESSAGE_BYTES, TaskMessage
from durable_mgmt.taskhub.timefmt import to_iso
from durable_mgmt.transports import StorageTransport

from .conformance.layouts import GENERATIONS, write_layout
from .conformance.test_partitions import PARTITIONS, provider_queue
from .test_cli_support import hostlike_instance

IDS = ["plain-1", "", "quote\"back\\slash", "tab\tnew\nline", "ctrl\x01\x1f", "ünïcødé-✓", "astral-\U0001F600",
       "lone-\ud800-surrogate", "\x00instance\x00", "'apos'", "a" * 400, "</script>&amp;"]
# Within the 32,768 characters a reason may have, but over the queue's inline limit once UTF-8 (3 bytes each).
BIG_REASON = "\u2713" * (MAX_INLINE_MESSAGE_BYTES // 3 + 10)
REASONS = [None, "", "cleanup", "Zürich ✓ \"quoted\" \\ \n", "\x00activity\x00", '"SequenceNumber":5', "r" * 3000]


def _generic(instance_id, reason, *, activity_id, now, sequence_number) -> str:
    message = TaskMessage(event(EventType.ExecutionTerminated, timestamp=now, Input=reason), instance_id, None,
                          activity_id=activity_id)
    message.sequence_number = sequence_number
    return message.encode()


@pytest.mark.parametrize("reason", REASONS)
def test_a_rendered_terminate_is_what_encode_writes_byte_for_byte(reason):
    template = MessageTemplate(EventType.ExecutionTerminated, Input=reason)
    rng = random.Random(13)
    for instance_id in IDS:
        now = datetime(2026, 11, 30, 10, rng.randrange(60), rng.randrange(60), rng.choice([0, 120000, 5, 999999]),
                       tzinfo=timezone.utc)
        activity = f"{rng.getrandbits(128):032x}"
        activity = f"{activity[:8]}-{activity[8:12]}-{activity[12:16]}-{activity[16:20]}-{activity[20:]}"
        seq = rng.randrange(1, 10**12)
        rendered = template.render(instance_id, sequence_number=seq, activity_id=activity, now=now)
        assert rendered == _generic(instance_id, reason, activity_id=activity, now=now, sequence_number=seq)
        assert json.loads(rendered)["TaskMessage"]["OrchestrationInstance"]["InstanceId"] == instance_id


def test_each_render_has_its_own_activity_id_and_the_time_it_was_made():
    template = MessageTemplate(EventType.ExecutionTerminated, Input="x")
    before = datetime.now(timezone.utc)
    first, second = (json.loads(template.render("i", sequence_number=n)) for n in (1, 2))
    assert first["ActivityId"] != second["ActivityId"]
    assert (first["SequenceNumber"], second["SequenceNumber"]) == (1, 2)
    stamp = datetime.fromisoformat(first["TaskMessage"]["Event"]["Timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)


def test_a_delayed_message_is_not_templated():
    # A timer is sent hidden until it fires (TaskHubQueue.GetVisibilityDelay): never from a template. (Values that
    # look like the probe's markers cannot cut a template: they are JSON-escaped inside a string; see REASONS.)
    with pytest.raises(TemplateUnsupported, match="delay"):
        MessageTemplate(EventType.TimerFired, FireAt=datetime.now(timezone.utc) + timedelta(hours=1), TimerId=1)


def _reference_iso(value: datetime) -> str:
    """Newtonsoft's UTC DateTime, written out independently: 4-digit year, seconds, the fraction's trailing
    zeros trimmed (none when it is zero), 'Z'."""
    v = value.astimezone(timezone.utc) if value.tzinfo else value
    fraction = f".{v.microsecond:06d}".rstrip("0") if v.microsecond else ""
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}{fraction}Z"


def test_to_iso_writes_utc_times_as_newtonsoft_does():
    rng = random.Random(7)
    tzs = [timezone.utc, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30)), None]
    for _ in range(2000):
        value = datetime(rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
                         rng.randrange(60), rng.randrange(60), rng.choice([0, 10, 100000, rng.randrange(10**6)]),
                         tzinfo=rng.choice(tzs))
        if value.tzinfo is not None and value.year in (1, 9998):
            continue  # an offset could move it out of datetime's range
        assert to_iso(value) == _reference_iso(value), value
    assert to_iso(datetime(1601, 1, 1, tzinfo=timezone.utc)) == "1601-01-01T00:00:00Z"
    assert to_iso(datetime(999, 1, 2, 3, 4, 5, 600000)) == "0999-01-02T03:04:05.6Z"


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_a_bulk_terminate_sends_each_instance_the_message_its_workers_read(account, hub_name, generation):
    """The job's bodies, read raw off the provider's own queue for each id (its partition count is 6): Base64
    on a v2 hub, UTF-8 JSON on a v3 one (as tests/conformance/test_partitions.py pins for single sends), each
    the encoding of ExecutionTerminated for that instance with the job's reason; a message too large for the
    queue goes to a blob as any large message does (MessageManager.SerializeMessageDataAsync)."""
    await write_layout(account, hub_name, generation, PARTITIONS)
    ids = [f"bulk-{i}-\u00e9\"x" for i in range(12)]
    async with TaskHub(account, hub_name) as hub:
        for iid in ids[:6]:
            await hostlike_instance(hub, iid, "Running", name="Small")
        manager = InstanceManager(StorageTransport(hub))
        info = await (await manager.bulk(BulkRequest("terminate", "name = 'Small'", reason="tidy \u2713"))).run()
        assert (info.state, info.done, info.failed) == (JobState.COMPLETED, 6, 0), info
        # A job's reason is kept in its row (at most 30,000 characters as JSON), so its message always fits the
        # queue; a template's own send still stores a larger one in a blob.
        big = MessageTemplate(EventType.ExecutionTerminated, Input=BIG_REASON)
        for iid in ids[6:]:
            await hub.send_rendered(big, iid)
        found, blobbed = {}, set()
        for iid in ids:
            queue = hub.queue(provider_queue(hub_name, iid))
            for m in await queue.peek_messages(max_messages=32):
                text = base64.b64decode(m.content, validate=True).decode() if generation == "v2" else m.content
                assert generation == "v2" or text.startswith("{")
                data = json.loads(text)
                if data["CompressedBlobName"]:
                    assert data["TaskMessage"] is None  # the wrapper; the blob holds the message
                    blobbed.add(m.id)
                    text = await hub.large.download(data["CompressedBlobName"])
                    data = json.loads(text)
                inst = data["TaskMessage"]["OrchestrationInstance"]["InstanceId"]
                if inst == iid:
                    found[iid] = (text, data)
    assert set(found) == set(ids) and len(blobbed) == len(ids[6:])
    for iid, (text, data) in found.items():
        reason = "tidy \u2713" if iid in ids[:6] else BIG_REASON
        now = datetime.fromisoformat(data["TaskMessage"]["Event"]["Timestamp"].replace("Z", "+00:00"))
        assert text == _generic(iid, reason, activity_id=data["ActivityId"], now=now,
                                sequence_number=data["SequenceNumber"])


async def test_rendered_and_encoded_terminates_agree_on_observers_and_errors(hub, client):
    # send_rendered must notify the send observers (the local engine's wake-ups) as
    # send_to_orchestration does, and translate a missing queue into the same error.
    seen = []
    stop = hub.observe_sends(lambda q, d: seen.append((q, d)))
    template = MessageTemplate(EventType.ExecutionTerminated, Input="r\u2028\"x")
    await hub.send_rendered(template, "obs-1")
    await hub.send_to_orchestration(template.message("obs-1"))  # encoded whole, as a single terminate is
    stop()
    queue = hub.names.control_queue_for("obs-1")
    assert seen == [(queue, 0), (queue, 0)]
    bodies = [await hub.large.decode_message(m.content) for m in await hub.queue(queue).peek_messages(max_messages=32)]
    assert [(m.instance_id, m.event.get("Input")) for m in bodies] == [("obs-1", "r\u2028\"x")] * 2
    await hub.queue(queue).delete_queue()
    errors = []
    for send in (lambda: hub.send_rendered(template, "obs-1"), lambda: hub.send_to_orchestration(template.message("obs-1"))):
        with pytest.raises(Exception) as e:
            await send()
        errors.append((type(e.value), str(e.value)))
    assert errors[0] == errors[1], errors


def test_rendered_terminates_match_encode_under_fuzz():
    # 15,000 renders: ids/reasons of JSON escapes, lone surrogates, U+2028/9, BOM, probe-marker look-alikes,
    # 2,000-char ids; naive, non-UTC, year 1/999/9999 times; sequence numbers 0..2**63-1.
    rng = random.Random(1)
    alphabet = ['"', '\\', '/', '\n', '\r', '\t', '\b', '\f', '\x00', '\x1f', '\x7f', '\u2028', '\u2029', '\ud800',
                '\udfff', '\U0001F600', 'a', ':', ',', '{', '}', '\ufeff', '\u0085', 'é', '<', '>', '&', "'", ' ']
    probes = ['"Timestamp":"1901-02-03T04:05:06.789012Z"', '"SequenceNumber":987654321012',
              '"InstanceId":"\\u0000instance\\u0000"', '"ActivityId":"\\u0000activity\\u0000"']

    def s(n):
        return "".join(rng.choice(alphabet) for _ in range(n))
    times = [datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(999, 1, 1, 0, 0, 0, 10),
             datetime(2026, 5, 6, 7, 8, 9, 120, tzinfo=timezone(timedelta(hours=-3))),
             datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), datetime(1, 1, 1)]
    for _ in range(3000):
        reason = rng.choice([None, s(rng.randrange(0, 50)), rng.choice(probes), s(5) + rng.choice(probes)])
        template = MessageTemplate(EventType.ExecutionTerminated, Input=reason)  # raises if it cannot be made
        for _ in range(5):
            iid = rng.choice([s(rng.randrange(0, 30)), rng.choice(probes), "x" * rng.randrange(0, 2000)])
            now, seq = rng.choice(times), rng.choice([0, 1, 10**18, 2**63 - 1, rng.randrange(10**9)])
            act = rng.choice(["00000000-0000-0000-0000-000000000000", s(10)])
            m = TaskMessage(event(EventType.ExecutionTerminated, timestamp=now, Input=reason), iid, None, activity_id=act)
            m.sequence_number = seq
            assert template.render(iid, sequence_number=seq, activity_id=act, now=now) == m.encode()
