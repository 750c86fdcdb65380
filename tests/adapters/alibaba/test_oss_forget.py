"""``forget`` and retention on oss:// histories, against the local cloud's OSS shim with the official oss2 client:
every object of the bucket under the offline prefix (old versions' files included) is read back with oss2 and
holds no row of the forgotten keys; a delete downloads only the files whose log statistics may hold the keys; the
log entry of the delete does not name them; a kill -9 at each step of forget and a re-run completes without
redoing; a retention run keeps the versions registered training sets pin, and the others raise SnapshotExpired."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import skewless as sk
from skewless.adapters.alibaba.oss_erase import REDACTED
from skewless.errors import SnapshotExpired
from skewless.offline.delta_erase import FORGET_TAG, Erasing, keys_predicate
from tests.support.object_store import check_forget_leaves_nothing_in_the_bucket

from .conftest import oss_keys, oss_repo

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = timedelta(days=1)


def _people(store: sk.FeatureStore, retention: timedelta | None = None) -> None:
    person = sk.Entity("person", join_keys=["k"])
    store.apply([person, sk.FeatureView("people", [person], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)],
                                        history_retention=retention)])


def _ingest(store: sk.FeatureStore, keys: list[int], when: datetime = T0) -> None:
    store.ingest("people", pd.DataFrame({"k": keys, "event_timestamp": [when] * len(keys),
                                         "name": [f"person {k}" for k in keys]}))


def rows_in_bucket(store: sk.FeatureStore, bucket, keys: list[int], view: str = "people") -> dict[str, int]:
    """Rows of ``keys`` in every Parquet object under the view's prefix, each read whole with oss2."""
    found = {}
    for key in oss_keys(bucket, store.offline.loc.key(view) + "/"):
        if key.endswith(".parquet") and "_delta_log/" not in key:
            table = pq.read_table(io.BytesIO(bucket.get_object(key).read()))
            n = pc.sum(pc.is_in(table.column("k"), pa.array(keys, table.column("k").type))).as_py() or 0
            if n:
                found[key] = n
    return found


def log_entries(store: sk.FeatureStore, bucket, view: str = "people") -> list[bytes]:
    prefix = store.offline._log_prefix(view)
    return [bucket.get_object(k).read() for k in oss_keys(bucket, prefix) if k.endswith(".json")]


def test_forget_leaves_nothing_of_the_entity_in_oss(tmp_path, oss, bucket):
    """The object-store check every backend passes (as S3's): report, oss2 scan of every object, newest version
    reads the others, the training set that held the entity refuses to rebuild."""
    check_forget_leaves_nothing_in_the_bucket(oss_repo(tmp_path, oss), lambda prefix: oss_keys(bucket, prefix),
                                              lambda key: bucket.get_object(key).read())


def test_a_delete_downloads_only_the_files_that_may_hold_the_keys_and_its_log_entry_does_not_name_them(
        tmp_path, oss, bucket):
    store = oss_repo(tmp_path / "repo", oss)
    _people(store)
    for day in range(8):  # one file per ingest, keys 10*day .. 10*day+2
        _ingest(store, [10 * day, 10 * day + 1, 10 * day + 2], T0 + day * D)
    gone = [21, 52]
    assert sum(rows_in_bucket(store, bucket, gone).values()) == 2
    report = store.forget("person", gone, purge_now=True)
    assert report.offline_rows == {"people": 2} and report.complete
    assert store.offline.erase_reads == [("people", 2, 8)]  # the files of days 2 and 5, of 8
    assert rows_in_bucket(store, bucket, gone) == {}
    everyone = [k for day in range(8) for k in (10 * day, 10 * day + 1, 10 * day + 2) if k not in gone]
    entities = pd.DataFrame({"k": everyone, "event_timestamp": [T0 + 10 * D] * len(everyone)})
    got = store.get_historical_features(entities, ["people:name"]).to_pandas()
    assert got["name"].tolist() == [f"person {k}" for k in everyone]
    # the delete's log entry names the request, not the keys; delta-rs reads it back as a DELETE with its metrics
    deletes = [json.loads(line)["commitInfo"] for entry in log_entries(store, bucket)
               for line in entry.decode().splitlines() if '"commitInfo"' in line and FORGET_TAG in line]
    assert len(deletes) == 1
    assert deletes[0]["operationParameters"]["predicate"] == REDACTED.format(tag=report.request)
    assert deletes[0]["operation"] == "DELETE" and deletes[0]["operationMetrics"]["num_deleted_rows"] == 2
    # the same request again: resumed from its journal, nothing downloaded or deleted again
    again = store.forget("person", gone, purge_now=True)
    assert again.resumed and again.offline_rows == report.offline_rows and len(store.offline.erase_reads) == 1
    # forgetting keys no file can hold (of the 7 left: the two rewritten as one) downloads and commits nothing
    version = store.offline.version("people")
    assert store.forget("person", [999], purge_now=True).offline_rows == {"people": 0}
    assert store.offline.erase_reads[-1] == ("people", 0, 7) and store.offline.version("people") == version


def test_after_forget_no_object_of_the_repo_on_oss_holds_the_key(tmp_path, oss, bucket):
    """A full scan with oss2 of every object under the repo's prefix — registry, forget journal, audit log, Delta
    log entries and every data file: the key is in no row, and in no other object's bytes (the delete's predicate
    is replaced; the key is neither minimum nor maximum of its file, the statistics caveat of docs/governance.md)."""
    store = oss_repo(tmp_path / "repo", oss)
    customer = sk.Entity("customer", ["cid"])
    store.apply([customer, sk.FeatureView("orders", [customer], [sk.Field("cid", sk.String),
                                                                 sk.Field("total", sk.Float64)])])
    secret = "m-mallory-7f3a"
    store.ingest("orders", pd.DataFrame({"cid": ["a-anna", secret, "z-zoe"], "event_timestamp": [T0] * 3,
                                         "total": [1.0, 2.0, 3.0]}))
    store.ingest("orders", pd.DataFrame({"cid": ["b-bob"], "event_timestamp": [T0 + D], "total": [4.0]}))
    assert store.forget("customer", [secret], purge_now=True).complete
    root = store.offline.loc.key("").rsplit("/", 2)[0] + "/"  # <fresh prefix>/: registry/ and offline/ under it
    keys = oss_keys(bucket, root)
    assert any("/forget/" in k for k in keys) and any("/audit/" in k for k in keys)
    assert any(k.endswith(".parquet") and "_delta_log/" not in k for k in keys)
    for key in keys:
        data = bucket.get_object(key).read()
        if key.endswith(".parquet") and "_delta_log/" not in key:
            assert secret not in pq.read_table(io.BytesIO(data)).column("cid").to_pylist(), key
        else:
            assert secret.encode() not in data, key


def test_a_delete_that_reads_a_file_its_statistics_excluded_is_redone_with_every_file(tmp_path, oss, bucket):
    """delta-rs prunes with the statistics the files were picked by, so it never asks for another; if it did (here:
    rows given that do not match the predicate), the delete is redone with every file downloaded, never failed."""
    store = oss_repo(tmp_path / "repo", oss)
    _people(store)
    for day in range(4):
        _ingest(store, [10 * day, 10 * day + 1], T0 + day * D)
    rows = Erasing(keys_predicate({"k": sk.Int64}, [(31,)]), {"k": sk.Int64}, ((1,),))  # picks day 0's file
    version = store.offline.version("people")
    assert store.offline._delete("people", rows, "t-1") == (1, version + 1)
    assert store.offline.erase_reads == [("people", 1, 4), ("people", 4, 4)]
    assert sum(rows_in_bucket(store, bucket, [31]).values()) == 1  # in the old version's file, until a vacuum
    got = store.get_historical_features(pd.DataFrame({"k": [1, 30, 31], "event_timestamp": [T0 + 9 * D] * 3}),
                                        ["people:name"]).to_pandas()
    assert got["name"].iloc[:2].tolist() == ["person 1", "person 30"] and pd.isna(got["name"].iloc[2])


def test_forget_while_another_store_ingests_loses_no_row_and_deletes_once(tmp_path, oss, bucket):
    """Another process's store (its own log mirror) appends while forget deletes and purges: every append lands, the
    delete commits once (a lost race re-reads and retries on the new version), and no object holds the key."""
    import threading

    store = oss_repo(tmp_path / "repo", oss)
    _people(store)
    _ingest(store, [1, 2, 3])
    other = sk.FeatureStore(tmp_path / "repo")
    errors: list[BaseException] = []

    def ingest():
        try:
            for i in range(6):
                other.ingest("people", pd.DataFrame({"k": [100 + i], "event_timestamp": [T0 + D],
                                                     "name": [f"person {100 + i}"]}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    writer = threading.Thread(target=ingest)
    writer.start()
    report = store.forget("person", [1], purge_now=True)
    writer.join()
    assert not errors and report.offline_rows == {"people": 1} and report.complete
    assert rows_in_bucket(store, bucket, [1]) == {}
    assert sum(1 for h in store.offline._table("people").history() if h.get(FORGET_TAG)) == 1
    keys = [1, 2, 3] + [100 + i for i in range(6)]
    got = store.get_historical_features(pd.DataFrame({"k": keys, "event_timestamp": [T0 + 2 * D] * len(keys)}),
                                        ["people:name"]).to_pandas()
    assert pd.isna(got["name"].iloc[0]) and got["name"].iloc[1:].tolist() == [f"person {k}" for k in keys[1:]]


def test_forget_by_two_join_keys_with_long_strings_on_oss(tmp_path, oss, bucket):
    """String keys longer than Delta's statistics keep (truncated min/max): the file holding them is still read."""
    store = oss_repo(tmp_path / "repo", oss)
    acct = sk.Entity("account", ["bank", "number"])
    store.apply([acct, sk.FeatureView("balance", [acct], [sk.Field("bank", sk.String), sk.Field("number", sk.Int64),
                                                           sk.Field("amount", sk.Float64)])])
    long_a, long_b = "a" * 80 + "z", "b" * 90 + "it's"
    for i, banks in enumerate([["c", "d"], [long_a, "a" * 80 + "y"], [long_b, "e"]]):
        store.ingest("balance", pd.DataFrame({"bank": banks, "number": [1, 1], "event_timestamp": [T0 + i * D] * 2,
                                              "amount": [float(i)] * 2}))
    report = store.forget("account", [(long_a, 1), (long_b, 1), ("d", 2)], purge_now=True)
    assert report.offline_rows == {"balance": 2} and report.complete
    # the files of the two long keys, read once (a key the statistics had wrongly excluded would be a second read
    # of every file); ("d", 2): the first file holds "d", but only number 1
    assert store.offline.erase_reads == [("balance", 2, 3)]
    left = []
    for key in oss_keys(bucket, store.offline.loc.key("balance") + "/"):
        if key.endswith(".parquet"):
            left += pq.read_table(io.BytesIO(bucket.get_object(key).read())).column("bank").to_pylist()
    assert sorted(left) == sorted(["c", "d", "a" * 80 + "y", "e"])


CHILD = """
import json, sys
import skewless as sk
r = sk.FeatureStore(sys.argv[1]).forget("person", [1], purge_now=True)
print(json.dumps(r.to_dict()))
"""


@pytest.mark.parametrize("point", ["forget.planned", "oss.before_log_entry", "forget.offline_deleted",
                                   "forget.online_deleted", "retention.expiry_recorded", "forget.purged"])
def test_kill_9_at_each_step_of_forget_on_oss_then_a_rerun_completes_without_redoing(tmp_path, oss, bucket, point):
    repo = tmp_path / "repo"
    store = oss_repo(repo, oss)
    _people(store)
    _ingest(store, [1, 2])
    store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [T0 + D]}), ["people:name"]
                                  ).register("ts")
    _ingest(store, [3], T0 + D)
    env = {**os.environ, "SKEWLESS_KILL_AT": point}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    env.pop("SKEWLESS_KILL_AT")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["complete"] and got["resumed"]
    assert got["offline_rows"] == {"people": 1} and got["training_sets"] == ["ts@1"]
    assert rows_in_bucket(store, bucket, [1]) == {}  # also in the upload of a delete killed before its commit
    history = store.offline._table("people").history()
    assert sum(1 for h in history if h.get(FORGET_TAG)) == 1  # one delete commit, never two
    got = store.get_historical_features(pd.DataFrame({"k": [1, 2, 3], "event_timestamp": [T0 + 2 * D] * 3}),
                                        ["people:name"]).to_pandas()
    assert got["name"].tolist()[1:] == ["person 2", "person 3"] and pd.isna(got["name"].iloc[0])


def test_retention_on_oss_keeps_what_a_training_set_pins_and_completes_a_pending_purge(tmp_path, oss, bucket):
    store = oss_repo(tmp_path / "repo", oss)
    _people(store, retention=7 * D)
    for day in range(4):
        _ingest(store, [10 + day], T0 + day * D)
        if day == 1:
            pinned = store.get_historical_features(pd.DataFrame({"k": [10, 11], "event_timestamp": [T0 + 5 * D] * 2}),
                                                   ["people:name"]).register("pinned")
    pin = pinned.snapshot["people"]
    report = store.forget("person", [12])  # day 2's file: the pin never held it
    assert report.purged["people"].startswith("pending until") and report.training_sets == []
    assert set(rows_in_bucket(store, bucket, [12]).values()) == {1}  # the old version's file stays until the purge
    old = store.get_historical_features(pd.DataFrame({"k": [12], "event_timestamp": [T0 + 5 * D]}), ["people:name"],
                                        snapshot={"people": pin + 1}).to_pandas()
    assert old["name"].tolist() == ["person 12"]  # still readable, as it was, within the retention
    assert store.retention_run(now=datetime.now(UTC) + 6 * D).forgets_completed == []
    assert rows_in_bucket(store, bucket, [12])
    deleted = store.offline.version("people")
    done = store.retention_run(now=datetime.now(UTC) + 8 * D)
    assert done.forgets_completed == [report.request]
    newest = done.expired["people"]["oldest"]  # every version older than the run's own expiry record expired
    assert newest > deleted and done.expired["people"]["kept"] == [pin]
    assert rows_in_bucket(store, bucket, [12]) == {}
    # the pinned snapshot rebuilds exactly (its files were kept on OSS); any other old version refuses
    rebuilt = store.get_historical_features(pd.DataFrame({"k": [10, 11], "event_timestamp": [T0 + 5 * D] * 2}),
                                            ["people:name"], snapshot={"people": pin})
    assert rebuilt.to_pandas()["name"].tolist() == ["person 10", "person 11"]
    with pytest.raises(SnapshotExpired, match="past its retention") as exc:
        store.get_historical_features(pd.DataFrame({"k": [10], "event_timestamp": [T0 + 5 * D]}), ["people:name"],
                                      snapshot={"people": pin + 1})
    assert exc.value.oldest == newest
    # a second run changes no object
    before = sorted(oss_keys(bucket, store.offline.loc.key("people") + "/"))
    store.retention_run(now=datetime.now(UTC) + 8 * D)
    after = sorted(oss_keys(bucket, store.offline.loc.key("people") + "/"))
    assert [k for k in after if "_delta_log/" not in k] == [k for k in before if "_delta_log/" not in k]
    # the history stays a standard Delta table: a plain delta-rs reader of a copy reads the newest version
    copy = tmp_path / "copy"
    prefix = store.offline.loc.key("people") + "/"
    for key in after:
        (copy / key[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
        bucket.get_object_to_file(key, str(copy / key[len(prefix):]))
    assert sorted(DeltaTable(str(copy)).to_pyarrow_table().column("k").to_pylist()) == [10, 11, 13]


def test_a_purge_after_a_checkpoint_dropped_the_deletes_removals_still_erases_the_rows(tmp_path, oss, bucket):
    """A checkpoint keeps removed files only for ``delta.deletedFileRetentionDuration`` (a week by default; here a
    second, with a checkpoint every 2 commits): a purge waiting longer than that for the view's retention still finds
    the files the delete removed — the vacuum replays every commit — and erases them from OSS."""
    import time

    from skewless.adapters.alibaba.oss_delta import OSSOfflineStore

    from .conftest import oss_options

    store = oss_repo(tmp_path / "repo", oss)
    _people(store, retention=D)
    _ingest(store, [1, 2])
    _ingest(store, [3], T0 + D)
    store.offline._commit("people", store.offline._table("people"), lambda dt: dt.alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 1 seconds", "delta.checkpointInterval": "2"},
        raise_if_not_exists=False))
    report = store.forget("person", [1])
    assert report.purged["people"].startswith("pending until") and rows_in_bucket(store, bucket, [1])
    time.sleep(1.5)
    _ingest(store, [4], T0 + 2 * D)
    _ingest(store, [5], T0 + 3 * D)
    assert any(k.endswith(".checkpoint.parquet") for k in oss_keys(bucket, store.offline._log_prefix("people")))
    # the premise: the newest checkpoint no longer lists the delete's removals
    fresh = OSSOfflineStore(store.offline.url, oss_options(oss))
    assert fresh._table("people").vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False) == []
    done = store.retention_run(now=datetime.now(UTC) + 2 * D)
    assert done.forgets_completed == [report.request]
    assert rows_in_bucket(store, bucket, [1]) == {}
    got = store.get_historical_features(pd.DataFrame({"k": [1, 2, 5], "event_timestamp": [T0 + 9 * D] * 3}),
                                        ["people:name"]).to_pandas()
    assert pd.isna(got["name"].iloc[0]) and got["name"].iloc[1:].tolist() == ["person 2", "person 5"]


def test_prediction_log_retention_on_oss_reads_only_the_old_files(tmp_path, oss, bucket):
    from skewless.serving import prediction_log
    from tests.support import predlog_helpers

    store = oss_repo(tmp_path / "repo", oss)
    manifest = predlog_helpers.manifest("m1")
    store.apply([sk.Entity("k", ["k"], dtype=sk.Int64)])
    store.apply([prediction_log.log_view(manifest)])
    view = prediction_log.view_name("m1")
    for i in range(3):  # three files, each a day of rows
        writer = prediction_log.PredictionLogWriter(store, manifest, spill_dir=tmp_path / f"spool{i}")
        chunk = predlog_helpers.rows(manifest, [1, 2], request=f"d{i}-")
        chunk["event_timestamp"] = [t + i * D for t in chunk["event_timestamp"]]
        writer.add(chunk)
        assert writer.close()
    t = predlog_helpers.T0
    report = store.retention_run(prediction_log_retention=D, now=t + 2 * D)  # rows of day 0 are older
    assert report.log_rows_deleted == {view: 2}
    assert store.offline.erase_reads == [(view, 1, 3)]
    left = prediction_log.read_log(store, "m1")
    assert sorted(left.column("request_id").to_pylist()) == ["d1-0", "d1-1", "d2-0", "d2-1"]
