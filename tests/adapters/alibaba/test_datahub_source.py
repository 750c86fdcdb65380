"""The DataHub stream source (``datahub://PROJECT/TOPIC``) against the local DataHub emulator, records written with
pydatahub as a producer would: every record read once across shards, resuming after a position, lag, sealed shards,
retention (StreamPositionExpired), undecodable BLOBs and typed errors."""

import datetime as dt
import json
import socket
import urllib.request

import pytest

pytest.importorskip("datahub")  # the alibaba extra
from datahub.models import BlobRecord, FieldType, RecordSchema, TupleRecord  # noqa: E402

from skewless import plugins  # noqa: E402
from skewless.adapters.alibaba.datahub import DataHubSource  # noqa: E402
from skewless.errors import ConfigError, NotFoundError, StoreUnavailable, StreamPositionExpired  # noqa: E402
from skewless.streams.source import ReadBatch, StreamSource  # noqa: E402

SCHEMA = RecordSchema.from_lists(["user_id", "amount", "event_ts"],
                                 [FieldType.BIGINT, FieldType.DOUBLE, FieldType.TIMESTAMP])
T0 = 1_700_000_000_000_000  # microseconds


def _topic(datahub_client, datahub_project, shards):
    datahub_client.create_tuple_topic(datahub_project, "events", shards, 1, SCHEMA, "events")
    return "events"


def _put(datahub_client, datahub_project, ids, shard=None):
    recs = []
    for i in ids:
        rec = TupleRecord(schema=SCHEMA, values=[i, i / 2, T0 + i])
        if shard is None:
            rec.partition_key = f"user-{i}"
        else:
            rec.shard_id = shard
        recs.append(rec)
    assert datahub_client.put_records(datahub_project, "events", recs).failed_record_count == 0


def _source(endpoint, datahub_project, **opts):
    return DataHubSource(f"datahub://{datahub_project}/events",
                         {"endpoint": endpoint, "access_key_id": "test", "access_key_secret": "test", **opts})


def _drain(src, positions=None, batch=7):
    """Every record of every shard after ``positions``, reading ``batch`` at a time until a read returns nothing."""
    positions, got = dict(positions or {}), []
    for shard in src.shards():
        while True:
            out = src.read(shard, positions.get(shard), batch)
            assert isinstance(out, ReadBatch)
            got += [r.value["user_id"] for r in out.records]
            positions[shard] = out.next_position
            if not out.records:
                break
    return got, positions


def test_reads_every_record_once_across_shards(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 3)
    _put(datahub_client, datahub_project, range(100))
    src = _source(datahub_endpoint, datahub_project)
    assert isinstance(src, StreamSource) and src.shards() == ["0", "1", "2"]
    got, positions = _drain(src)
    assert sorted(got) == list(range(100))
    assert len({s for s, p in positions.items() if p is not None}) > 1  # the partition keys spread the records
    one = src.read("0", None, 1).records[0]
    assert one.value["event_ts"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc) + \
        dt.timedelta(microseconds=one.value["user_id"])
    assert one.value["amount"] == one.value["user_id"] / 2 and one.error is None


def test_resumes_after_a_position_in_a_new_process(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 2)
    _put(datahub_client, datahub_project, range(10), shard="0")
    first = _source(datahub_endpoint, datahub_project).read("0", None, 4)
    assert [r.position for r in first.records] == ["0", "1", "2", "3"] and first.next_position == "3"
    _put(datahub_client, datahub_project, range(10, 15), shard="0")
    fresh = _source(datahub_endpoint, datahub_project)  # no kept cursor: seeks by sequence
    rest, positions = _drain(fresh, {"0": first.next_position})
    assert rest == list(range(4, 15)) and positions["0"] == "14"
    # the same read twice gives the same records (deterministic); nothing new is an empty batch at the same place
    again = fresh.read("0", "3", 3)
    assert [r.value["user_id"] for r in again.records] == [4, 5, 6]
    assert fresh.read("0", "14", 10) == ReadBatch([], "14", 0)
    assert fresh.read("1", None, 10) == ReadBatch([], None, 0)


def test_behind_latest(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 1)
    _put(datahub_client, datahub_project, range(3))
    src = _source(datahub_endpoint, datahub_project)
    first = src.read("0", None, 1)
    assert first.behind_latest_ms is not None and first.behind_latest_ms >= 0
    caught_up = src.read("0", first.next_position, 10)
    assert len(caught_up.records) == 2 and caught_up.behind_latest_ms == 0


def test_a_merged_shard_is_read_to_its_end_then_closed(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 2)
    _put(datahub_client, datahub_project, range(5), shard="0")
    _put(datahub_client, datahub_project, range(5, 8), shard="1")
    try:
        datahub_client.merge_shard(datahub_project, "events", "0", "1")
    except TypeError:  # pydatahub 2.29's MergeShardResult is broken after a successful answer
        pass
    _put(datahub_client, datahub_project, range(8, 12))
    src = _source(datahub_endpoint, datahub_project)
    assert src.shards() == ["0", "1", "2"]
    out = src.read("0", None, 100)
    assert len(out.records) == 5 and not out.closed
    assert src.read("0", out.next_position, 100) == ReadBatch([], "4", 0, closed=True)
    got, _ = _drain(src)
    assert sorted(got) == list(range(12))


def _trim(endpoint, datahub_project, shard, before):
    req = urllib.request.Request(f"{endpoint}/_emulator/trim/{datahub_project}/events/{shard}?before={before}", method="POST")
    with urllib.request.urlopen(req) as resp:  # noqa: S310 - the local emulator
        assert json.loads(resp.read())["FirstSequence"] == before


def test_a_position_past_retention_is_an_error_not_a_skip(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 1)
    _put(datahub_client, datahub_project, range(10))
    _trim(datahub_endpoint, datahub_project, "0", 4)
    src = _source(datahub_endpoint, datahub_project)
    # only record 3 itself is gone: nothing after it is lost
    assert [r.position for r in src.read("0", "3", 3).records] == ["4", "5", "6"]
    with pytest.raises(StreamPositionExpired) as err:
        src.read("0", "1", 3)
    assert (err.value.shard, err.value.position) == ("0", "1")
    with pytest.raises(NotFoundError, match="beyond"):
        src.read("0", "50", 3)


def test_blob_payloads_decode_as_json_or_come_back_raw(datahub_client, datahub_endpoint, datahub_project):
    datahub_client.create_blob_topic(datahub_project, "events", 1, 1, "blobs")
    payloads = [b'{"user_id": 1, "amount": 2.5}', b"\xff\xfe not json", b"[1, 2]"]
    datahub_client.put_records(datahub_project, "events", [BlobRecord(blob_data=p) for p in payloads])
    recs = _source(datahub_endpoint, datahub_project).read("0", None, 10).records
    assert recs[0].value == {"user_id": 1, "amount": 2.5} and recs[0].raw is None
    assert recs[1].value is None and recs[1].raw == payloads[1] and "UTF-8 JSON" in recs[1].error
    assert recs[2].value is None and recs[2].raw == payloads[2] and "not an object" in recs[2].error


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_typed_errors(datahub_client, datahub_endpoint, datahub_project):
    _topic(datahub_client, datahub_project, 1)
    with pytest.raises(StoreUnavailable):
        _source(f"http://127.0.0.1:{_free_port()}", datahub_project, connect_timeout=1).shards()
    with pytest.raises(ConfigError, match="refused the credentials"):
        _source(datahub_endpoint, datahub_project, access_key_secret="wrong").shards()
    with pytest.raises(NotFoundError, match="NoSuchTopic"):
        DataHubSource(f"datahub://{datahub_project}/missing", {"endpoint": datahub_endpoint, "access_key_id": "test",
                                                       "access_key_secret": "test"}).read("0", None, 1)
    with pytest.raises(NotFoundError, match="NoSuchShard"):
        _source(datahub_endpoint, datahub_project).read("7", None, 1)
    with pytest.raises(ConfigError, match="PROJECT/TOPIC"):
        DataHubSource("datahub://only-project", {"endpoint": datahub_endpoint})
    with pytest.raises(ConfigError, match="unknown DataHub options"):
        _source(datahub_endpoint, datahub_project, bucket="x")


def test_plugin_table_names_the_source(datahub_endpoint, datahub_project, datahub_client):
    _topic(datahub_client, datahub_project, 1)
    factory = plugins.load("stream", f"datahub://{datahub_project}/events")
    src = factory(f"datahub://{datahub_project}/events?endpoint={datahub_endpoint}", None,
                  {"access_key_id": "test", "access_key_secret": "test"})
    assert isinstance(src, DataHubSource) and src.shards() == ["0"]


CHILD = """
import sys, json
import skewless as sk
repo, project, endpoint = sys.argv[1:4]
s = sk.FeatureStore(repo).stream("v", f"datahub://{project}/events",
                                 options={"endpoint": endpoint, "access_key_id": "test", "access_key_secret": "test"},
                                 max_records=150, until_caught_up=True)
print(json.dumps({"rows": s.rows, "dead": s.dead_lettered}))
"""
EVENT_SCHEMA = RecordSchema.from_lists(["k", "event_timestamp", "x", "eid"],
                                       [FieldType.BIGINT, FieldType.TIMESTAMP, FieldType.DOUBLE, FieldType.BIGINT])


def test_datahub_into_a_view_exactly_once_across_repeated_kill_9(datahub_client, datahub_endpoint, datahub_project,
                                                                 tmp_path):
    """kill -9 at each stream point in turn (each run resumes from the last commit and dies further on), then a clean
    run: every event once, offline and online."""
    import os
    import signal
    import subprocess
    import sys

    from tests.core.test_faults_stream import KEYS, PER_KEY, assert_exactly_once, events, history, make_repo

    datahub_client.create_tuple_topic(datahub_project, "events", 3, 1, EVENT_SCHEMA, "events")
    recs = []
    for ev in events():  # TIMESTAMP is microseconds; a key's partition key keeps it on one shard, in time order
        ts = int(dt.datetime.fromisoformat(ev["event_timestamp"]).timestamp() * 1_000_000)
        rec = TupleRecord(schema=EVENT_SCHEMA, values=[ev["k"], ts, ev["x"], ev["eid"]])
        rec.partition_key = str(ev["k"])
        recs.append(rec)
    for i in range(0, len(recs), 500):
        assert datahub_client.put_records(datahub_project, "events", recs[i:i + 500]).failed_record_count == 0
    store = make_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    args = [sys.executable, "-c", CHILD, str(tmp_path / "repo"), datahub_project, datahub_endpoint]
    committed = [0]
    for point in ("stream.before_offline_commit:3", "stream.online_chunk:2", "stream.after_offline_commit:2"):
        killed = subprocess.run(args, env={**env, "SKEWLESS_KILL_AT": point}, capture_output=True, text=True,
                                timeout=300)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        committed.append(history(store).count_rows())
    assert 0 < committed[1] < committed[-1] < KEYS * PER_KEY, committed  # each run got further before dying
    last = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout.strip().splitlines()[-1]) == {"rows": KEYS * PER_KEY - committed[-1], "dead": 0}
    assert_exactly_once(store)
