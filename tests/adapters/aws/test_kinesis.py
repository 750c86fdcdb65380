"""Kinesis as a stream source against moto's Kinesis (server mode, the local cloud's ``moto_endpoint``), with boto3:
the StreamSource contract (every record once, in shard order, resumed after a position), and a view consumed from
it exactly once across kill -9 (counts and values, offline and online)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import boto3
import pytest

from skewless.adapters.aws.kinesis import KinesisSource
from skewless.errors import NotFoundError
from tests.core.test_faults_stream import KEYS, PER_KEY, assert_exactly_once, events, history, make_repo

CHILD = """
import sys, json
import skewless as sk
repo, stream, endpoint = sys.argv[1:4]
s = sk.FeatureStore(repo).stream("v", "kinesis://" + stream, options={"endpoint_url": endpoint},
                                 max_records=150, until_caught_up=True)
print(json.dumps({"rows": s.rows, "dead": s.dead_lettered}))
"""


@pytest.fixture
def kinesis(moto_endpoint, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"ev-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=3)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    yield client, name, moto_endpoint
    client.delete_stream(StreamName=name)


def put(client, name: str, payloads: list[bytes], keys: list[str]) -> None:
    for i in range(0, len(payloads), 500):  # PutRecords takes at most 500
        resp = client.put_records(StreamName=name, Records=[{"Data": d, "PartitionKey": k} for d, k in
                                                             zip(payloads[i:i + 500], keys[i:i + 500])])
        assert resp["FailedRecordCount"] == 0


def test_reads_every_record_once_in_shard_order_and_resumes_after_a_position(kinesis):
    client, name, endpoint = kinesis
    put(client, name, [json.dumps({"i": i}).encode() for i in range(300)] + [b"not json"],
        [str(i % 7) for i in range(301)])
    src = KinesisSource(name, {"endpoint_url": endpoint})
    shards = src.shards()
    assert len(shards) == 3
    seen, bad = [], []
    for shard in shards:
        after, in_shard, first = None, [], None
        while True:
            batch = src.read(shard, after, 40)
            if not batch.records:
                assert batch.next_position == after
                break
            in_shard += batch.records
            after = batch.next_position
            first = first or (after, len(in_shard))
        seen += [r.value["i"] for r in in_shard if r.value is not None]
        bad += [r for r in in_shard if r.value is None]
        # a fresh source (no iterator kept) resumes strictly after a committed position
        again = KinesisSource(name, {"endpoint_url": endpoint}).read(shard, first[0], 10_000).records
        assert [r.position for r in again] == [r.position for r in in_shard[first[1]:]]
    assert sorted(seen) == list(range(300))
    assert len(bad) == 1 and bad[0].raw == b"not json" and "undecodable" in bad[0].error


def test_unknown_stream_is_not_found(kinesis):
    _, _, endpoint = kinesis
    with pytest.raises(NotFoundError):
        KinesisSource("no-such-stream", {"endpoint_url": endpoint}).shards()


@pytest.mark.parametrize("point", ["stream.before_offline_commit:3", "stream.after_offline_commit:3",
                                   "stream.online_chunk:4"])
def test_kinesis_into_a_view_exactly_once_across_kill_9(kinesis, tmp_path, point):
    client, name, endpoint = kinesis
    evs = events()
    put(client, name, [json.dumps(e).encode() for e in evs], [str(e["k"]) for e in evs])
    store = make_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    args = [sys.executable, "-c", CHILD, str(tmp_path / "repo"), name, endpoint]
    proc = subprocess.run(args, env={**env, "SKEWLESS_KILL_AT": point}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    before = history(store).count_rows()
    assert 0 < before < KEYS * PER_KEY
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rows"] == KEYS * PER_KEY - before
    assert_exactly_once(store)
