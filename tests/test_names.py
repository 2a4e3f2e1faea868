"""Golden facts of task hub naming: FNV-1a routing, key escaping, hub-name rules."""

import pytest

from durable_mgmt.errors import InvalidHubName, InvalidInstanceId
from durable_mgmt.taskhub.names import (TaskHubNames, escape_key, fnv1a32, partition_index, unescape_key,
                                        validate_hub_name, validate_instance_id)


@pytest.mark.parametrize("data,expected", [
    # Published FNV-1a 32-bit test vectors.
    (b"", 0x811C9DC5),
    (b"a", 0xE40C292C),
    (b"foobar", 0xBF9CF968),
])
def test_fnv1a_matches_published_vectors(data, expected):
    assert fnv1a32(data) == expected


@pytest.mark.parametrize("instance_id,count,expected", [
    ("a", 4, 0xE40C292C % 4),
    ("foobar", 4, 0xBF9CF968 % 4),
    ("foobar", 16, 0xBF9CF968 % 16),
    ("foobar", 1, 0),
    # Multi-byte UTF-8: hashed over the UTF-8 bytes, as Fnv1aHashHelper does.
    ("é", 4, fnv1a32("é".encode("utf-8")) % 4),
])
def test_partition_routing(instance_id, count, expected):
    assert partition_index(instance_id, count) == expected


def test_routing_golden_ids():
    # Fixed expectations: a change here means instances would land on other control queues.
    ids = ["abc", "9ad8712aa44c4d6a8d980a01eb55ffb1", "order-42", "singleton"]
    assert [partition_index(i, 4) for i in ids] == [3, 2, 0, 2]
    assert [fnv1a32(i.encode()) for i in ids] == [440920331, 1076937134, 1461995252, 622135554]
    names = TaskHubNames("MyHub", 4)
    assert names.control_queue_for("abc") == f"myhub-control-0{440920331 % 4}"


@pytest.mark.parametrize("raw,escaped", [
    ("plain-id", "plain-id"),
    ("a^b", "a^^b"),
    ("a/b", "a^0b"),
    ("a\\b", "a^1b"),
    ("a#b", "a^2b"),
    ("a?b", "a^3b"),
    ("\x00", "^\u00c0"),
    ("\x1f", "^\u00df"),
    ("\x7f", "^\u013f"),
    ("\x9f", "^\u015f"),
    ("^/\\#?", "^^^0^1^2^3"),
    # Just outside the escaped ranges: kept as they are (escape_key's fast path must agree).
    (" ~\x7e\xa0\u00c0\U0001F600", " ~\x7e\xa0\u00c0\U0001F600"),
    ("ok\x1fok\x9fok", "ok^\u00dfok^\u015fok"),
])
def test_key_escaping_golden(raw, escaped):
    assert escape_key(raw) == escaped
    assert unescape_key(escaped) == raw


def test_table_queue_container_names():
    n = TaskHubNames("SampleHub", 4)
    assert n.instances_table == "SampleHubInstances"
    assert n.history_table == "SampleHubHistory"
    assert n.control_queues == ["samplehub-control-00", "samplehub-control-01", "samplehub-control-02",
                                "samplehub-control-03"]
    assert n.workitem_queue == "samplehub-workitems"
    assert n.large_messages_container == "samplehub-largemessages"
    assert n.leases_container == "samplehub-leases"
    # AzureStorageOrchestrationServiceSettings.PartitionTableName; SafePartitionManager's "intent"/"ownership"
    # BlobPartitionLeaseManagers (DurableTask.AzureStorage/Partitioning/SafePartitionManager.cs).
    assert n.partitions_table == "SampleHubPartitions"
    assert n.intent_lease_blob(2) == "intent/samplehub-control-02"
    assert n.ownership_lease_blob(2) == "ownership/samplehub-control-02"
    assert n.app_lease_container == "samplehub-applease" and n.app_lease_blob == "samplehub-appleaseinfo"
    assert n.partition_of_queue("samplehub-control-05") == 5
    assert n.partition_of_queue("samplehub-workitems") is None and n.partition_of_queue("otherhub-control-01") is None


@pytest.mark.parametrize("name,why", [
    ("ab", "2 characters"),
    ("a" * 46, "46 characters"),
    ("1Hub", "does not start with a letter"),
    ("my-hub", "'-'"),
    ("my_hub", "'_'"),
    ("hub name", "' '"),
    ("", "0 characters"),
])
def test_invalid_hub_names_say_why(name, why):
    with pytest.raises(InvalidHubName) as e:
        validate_hub_name(name)
    assert why in str(e.value)
    assert "3-45 characters" in str(e.value)


@pytest.mark.parametrize("name", ["abc", "MyTaskHub", "A" + "1" * 44])
def test_valid_hub_names(name):
    assert validate_hub_name(name) == name


@pytest.mark.parametrize("iid,fragment", [
    ("", "empty"),
    ("@counter@x", "reserved for durable entities"),
    ("a/b", "'/'"),
    ("a#b", "'#'"),
    ("tab\there", "U+0009"),
    ("x" * 257, "257 characters"),
])
def test_invalid_instance_ids(iid, fragment):
    with pytest.raises(InvalidInstanceId) as e:
        validate_instance_id(iid)
    assert fragment in str(e.value)
