"""The local DataHub emulator, driven only through pydatahub (the official SDK, its default JSON protocol with LZ4
bodies): projects and topics, every TUPLE field type and BLOBs round trip, cursors of each type, reads chained by
NextCursor, hash routing, split/merge and sealed shards, signatures and DataHub's error codes."""

import decimal
import hashlib
import time

import pytest

datahub = pytest.importorskip("datahub")  # the alibaba extra
from datahub import DataHub  # noqa: E402
from datahub.core import DatahubProtocolType  # noqa: E402
from datahub.exceptions import (  # noqa: E402
    AuthorizationFailedException,
    InvalidCursorException,
    InvalidParameterException,
    ResourceExistException,
    ResourceNotFoundException,
    SeekOutOfRangeException,
    ShardSealedException,
)
from datahub.models import BlobRecord, CompressFormat, CursorType, FieldType, RecordSchema, TupleRecord  # noqa: E402

FIELDS = [("i8", FieldType.TINYINT), ("i16", FieldType.SMALLINT), ("i32", FieldType.INTEGER),
          ("i64", FieldType.BIGINT), ("s", FieldType.STRING), ("b", FieldType.BOOLEAN),
          ("ts", FieldType.TIMESTAMP), ("f", FieldType.FLOAT), ("d", FieldType.DOUBLE), ("dec", FieldType.DECIMAL)]
SCHEMA = RecordSchema.from_lists([n for n, _ in FIELDS], [t for _, t in FIELDS])
ROWS = [
    [1, 2, 3, 4, "héllo", True, 1_700_000_000_123_456, 1.5, 0.1, decimal.Decimal("12.345678")],
    [-128, -32768, -(2**31), -(2**63), "", False, 0, -2.5, -1e300, decimal.Decimal("-0.000001")],
    [None] * len(FIELDS),
]


@pytest.fixture
def dh(datahub_client):
    return datahub_client


@pytest.fixture
def project(datahub_project):
    return datahub_project


def _tuple_topic(dh, project, shards=1, name="t"):
    dh.create_tuple_topic(project, name, shards, 1, SCHEMA, "tuple topic")
    dh.wait_shards_ready(project, name)
    return name


def _records(rows, shard="0"):
    out = []
    for row in rows:
        rec = TupleRecord(schema=SCHEMA, values=row)
        rec.shard_id = shard
        out.append(rec)
    return out


def _read_all(dh, project, topic, shard, limit=1000):
    cursor = dh.get_cursor(project, topic, shard, CursorType.OLDEST).cursor
    got = []
    while True:
        res = dh.get_tuple_records(project, topic, shard, SCHEMA, cursor, limit)
        got += res.records
        if res.record_count == 0:
            return got
        cursor = res.next_cursor


def test_projects_and_topics(dh, project):
    assert project in dh.list_project().project_names
    assert dh.get_project(project).comment == "test project"
    dh.update_project(project, "changed")
    assert dh.get_project(project).comment == "changed"
    with pytest.raises(ResourceExistException):
        dh.create_project(project, "again")
    topic = _tuple_topic(dh, project, shards=3)
    dh.create_blob_topic(project, "blobs", 1, 7, "blob topic")
    assert sorted(dh.list_topic(project).topic_names) == ["blobs", topic]
    info = dh.get_topic(project, topic)
    assert (info.shard_count, info.life_cycle, info.record_type.value) == (3, 1, "TUPLE")
    assert [(f.name, f.type) for f in info.record_schema.field_list] == FIELDS
    assert dh.get_topic(project, "blobs").record_type.value == "BLOB"
    with pytest.raises(ResourceExistException):
        dh.create_blob_topic(project, "blobs", 1, 1, "again")
    shards = dh.list_shard(project, topic).shards
    assert [s.shard_id for s in shards] == ["0", "1", "2"]
    assert all(s.state.value == "ACTIVE" for s in shards)
    # the hash key space is split evenly and without gaps
    assert shards[0].begin_hash_key == "0" * 32 and shards[-1].end_hash_key == "F" * 32
    for left, right in zip(shards, shards[1:]):
        assert int(left.end_hash_key, 16) + 1 == int(right.begin_hash_key, 16)


def test_every_field_type_round_trips(dh, project):
    topic = _tuple_topic(dh, project)
    recs = _records(ROWS)
    recs[0].put_attribute("source", "unit")
    assert dh.put_records(project, topic, recs).failed_record_count == 0
    got = _read_all(dh, project, topic, "0")
    assert [r.sequence for r in got] == [0, 1, 2]
    for row, rec in zip(ROWS, got):
        want = list(row)
        if want[7] is not None:
            want[7] = pytest.approx(want[7])
        assert list(rec.values) == want
    assert got[0].attributes == {"source": "unit"} and not got[1].attributes
    assert got[0].system_time == pytest.approx(time.time() * 1000, abs=60_000)


def test_blob_records_round_trip(dh, project):
    dh.create_blob_topic(project, "b", 1, 1, "blobs")
    payloads = [b"\x00\xffbinary", b'{"a": 1}', bytes(range(256)) * 40]
    dh.put_records(project, "b", [BlobRecord(blob_data=p) for p in payloads])
    cursor = dh.get_cursor(project, "b", "0", CursorType.OLDEST).cursor
    res = dh.get_blob_records(project, "b", "0", cursor, 10)
    assert [r.blob_data for r in res.records] == payloads


@pytest.mark.parametrize("compress", [CompressFormat.LZ4, CompressFormat.ZLIB, CompressFormat.NONE])
def test_compressed_request_bodies(datahub_endpoint, project, compress):
    """The default client LZ4-compresses put bodies when that makes them smaller (this one: 500 repetitive rows)."""
    client = DataHub("test", "test", datahub_endpoint, compress_format=compress)
    topic = _tuple_topic(client, project)
    rows = [[1, 2, i, i, "x" * 200, True, i, 0.5, 0.25, decimal.Decimal(i)] for i in range(500)]
    assert client.put_records(project, topic, _records(rows)).failed_record_count == 0
    got = _read_all(client, project, topic, "0", limit=150)
    assert [r.values[3] for r in got] == list(range(500))


def test_cursors_of_each_type(dh, project):
    topic = _tuple_topic(dh, project)
    empty = dh.get_cursor(project, topic, "0", CursorType.OLDEST)
    assert dh.get_tuple_records(project, topic, "0", SCHEMA, empty.cursor, 10).record_count == 0
    dh.put_records(project, topic, _records([[None] * 3 + [i] + [None] * 6 for i in range(3)]))
    time.sleep(0.01)
    dh.put_records(project, topic, _records([[None] * 3 + [i] + [None] * 6 for i in range(3, 5)]))
    oldest = dh.get_cursor(project, topic, "0", CursorType.OLDEST)
    latest = dh.get_cursor(project, topic, "0", CursorType.LATEST)
    assert (oldest.sequence, latest.sequence) == (0, 4)
    # LATEST points at the newest record itself
    newest = dh.get_tuple_records(project, topic, "0", SCHEMA, latest.cursor, 10)
    assert [r.values[3] for r in newest.records] == [4]
    second_put = newest.records[0].system_time
    by_time = dh.get_cursor(project, topic, "0", CursorType.SYSTEM_TIME, second_put)
    assert by_time.sequence == 3 and by_time.record_time == second_put
    by_seq = dh.get_cursor(project, topic, "0", CursorType.SEQUENCE, 2)
    res = dh.get_tuple_records(project, topic, "0", SCHEMA, by_seq.cursor, 2)
    assert [r.sequence for r in res.records] == [2, 3] and res.start_seq == 2
    rest = dh.get_tuple_records(project, topic, "0", SCHEMA, res.next_cursor, 10)
    assert [r.sequence for r in rest.records] == [4]
    # at the end of an open shard: nothing, and the same place again
    end = dh.get_tuple_records(project, topic, "0", SCHEMA, rest.next_cursor, 10)
    assert end.record_count == 0 and end.next_cursor == rest.next_cursor
    with pytest.raises(SeekOutOfRangeException):
        dh.get_cursor(project, topic, "0", CursorType.SEQUENCE, 5)
    with pytest.raises(SeekOutOfRangeException):
        dh.get_cursor(project, topic, "0", CursorType.SYSTEM_TIME, second_put + 60_000)


def test_records_route_by_shard_hash_key_and_partition_key(dh, project):
    topic = _tuple_topic(dh, project, shards=4)
    shards = dh.list_shard(project, topic).shards
    recs = []
    for key in ("alpha", "beta", "gamma", "delta", "alpha"):
        rec = TupleRecord(schema=SCHEMA, values=[None] * 4 + [key] + [None] * 5)
        rec.partition_key = key
        recs.append(rec)
    dh.put_records(project, topic, recs)
    where = {}
    for s in shards:
        for r in _read_all(dh, project, topic, s.shard_id):
            where.setdefault(r.values[4], set()).add(s.shard_id)
    for key, found in where.items():
        h = int(hashlib.md5(key.encode()).hexdigest(), 16)
        (want,) = [s.shard_id for s in shards if int(s.begin_hash_key, 16) <= h <= int(s.end_hash_key, 16)]
        assert found == {want}, key
    before = len(_read_all(dh, project, topic, "2"))
    hashed = TupleRecord(schema=SCHEMA, values=[None] * 10)
    hashed.hash_key = shards[2].begin_hash_key
    dh.put_records(project, topic, [hashed])
    assert len(_read_all(dh, project, topic, "2")) == before + 1


def test_split_and_merge_seal_parents(dh, project):
    topic = _tuple_topic(dh, project, shards=2)
    dh.put_records(project, topic, _records([[None] * 10], "0"))
    dh.split_shard(project, topic, "0")
    shards = {s.shard_id: s for s in dh.list_shard(project, topic).shards}
    assert shards["0"].state.value == "CLOSED"
    assert {shards["2"].state.value, shards["3"].state.value} == {"ACTIVE"}
    assert shards["2"].parent_shard_ids == ["0"]
    # a sealed shard keeps its records; read to its end it raises ShardSealedException (pydatahub: "read end")
    cursor = dh.get_cursor(project, topic, "0", CursorType.OLDEST).cursor
    res = dh.get_tuple_records(project, topic, "0", SCHEMA, cursor, 10)
    assert res.record_count == 1
    with pytest.raises(ShardSealedException):
        dh.get_tuple_records(project, topic, "0", SCHEMA, res.next_cursor, 10)
    failed = dh.put_records(project, topic, _records([[None] * 10], "0"))
    assert failed.failed_record_count == 1 and failed.failed_records[0].error_code == "InvalidShardOperation"
    try:
        dh.merge_shard(project, topic, "2", "3")
    except TypeError:  # pydatahub 2.29's MergeShardResult.__init__ is broken after a successful answer
        pass
    shards = {s.shard_id: s for s in dh.list_shard(project, topic).shards}
    assert shards["4"].state.value == "ACTIVE" and sorted(shards["4"].parent_shard_ids) == ["2", "3"]
    assert shards["4"].begin_hash_key == "0" * 32 and int(shards["4"].end_hash_key, 16) + 1 == int(
        shards["1"].begin_hash_key, 16)
    assert {shards[s].state.value for s in ("0", "2", "3")} == {"CLOSED"}


def test_missing_objects_are_not_found(dh, project):
    topic = _tuple_topic(dh, project)
    with pytest.raises(ResourceNotFoundException, match="NoSuchProject"):
        dh.list_topic("nosuchproject")
    with pytest.raises(ResourceNotFoundException, match="NoSuchTopic"):
        dh.get_topic(project, "missing")
    with pytest.raises(ResourceNotFoundException, match="NoSuchTopic"):
        dh.put_records(project, "missing", _records([[None] * 10]))
    with pytest.raises(ResourceNotFoundException, match="NoSuchShard"):
        dh.get_cursor(project, topic, "9", CursorType.OLDEST)


def test_signatures_are_checked(datahub_endpoint, project):
    with pytest.raises(AuthorizationFailedException, match="Unauthorized"):
        DataHub("test", "wrong-secret", datahub_endpoint).get_project(project)
    with pytest.raises(AuthorizationFailedException, match="Unauthorized"):
        DataHub("someone", "test", datahub_endpoint).list_project()


def test_invalid_cursors(dh, project):
    topic = _tuple_topic(dh, project, shards=2)
    dh.put_records(project, topic, _records([[None] * 10], "1"))
    with pytest.raises(InvalidCursorException):
        dh.get_tuple_records(project, topic, "0", SCHEMA, "not-a-cursor", 10)
    other = dh.get_cursor(project, topic, "1", CursorType.OLDEST).cursor
    with pytest.raises(InvalidCursorException):
        dh.get_tuple_records(project, topic, "0", SCHEMA, other, 10)


def test_malformed_records_reject_the_whole_request(dh, project):
    topic = _tuple_topic(dh, project)
    good = _records([[None] * 10])
    blob = BlobRecord(blob_data=b"not a tuple")  # pydatahub sends it; the topic's schema refuses it
    with pytest.raises(InvalidParameterException, match="MalformedRecord"):
        dh.put_records(project, topic, good + [blob])
    assert _read_all(dh, project, topic, "0") == []


def test_the_protobuf_protocol_is_refused_loudly(datahub_endpoint, project):
    pb = DataHub("test", "test", datahub_endpoint, protocol_type=DatahubProtocolType.PB)
    topic = _tuple_topic(pb, project)
    with pytest.raises(InvalidParameterException, match="JSON protocol only"):
        pb.put_records(project, topic, _records([[None] * 10]))
