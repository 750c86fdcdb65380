"""The purge of a ``forget`` that comes after a Delta checkpoint dropped the delete's removals, on any Delta store
(local and ``s3://``; ``oss://`` has its own test in tests/adapters/alibaba/test_oss_forget.py).

A checkpoint keeps a removed file only for the table's ``delta.deletedFileRetentionDuration`` (a week by default;
here a second): a purge waiting longer than that for the view's ``history_retention`` used to vacuum from the
checkpoint, which no longer lists the files the delete (and an earlier compaction) removed, so they stayed with the
erased rows in them while the forget said "done"."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import skewless as sk
from skewless.errors import SnapshotExpired

UTC = timezone.utc
T0 = pd.Timestamp("2024-01-01", tz="UTC")
D = timedelta(days=1)
GONE = 1


def rows_of(files: dict[str, pa.Table], key: int = GONE) -> dict[str, int]:
    """Per file (every Parquet file under the history, referenced by a version or not), its rows of ``key``."""
    found = {}
    for name, table in files.items():
        if "k" not in table.column_names:
            continue
        n = pc.sum(pc.equal(table.column("k"), key)).as_py() or 0
        if n:
            found[name] = n
    return found


def _ingest(store: sk.FeatureStore, keys: list[int], when: pd.Timestamp) -> None:
    store.ingest("people", pd.DataFrame({"k": keys, "event_timestamp": [when] * len(keys),
                                         "name": [f"person {k}" for k in keys]}))


def check_purge_after_a_checkpoint_erases_the_rows(store: sk.FeatureStore,
                                                   parquet_files: Callable[[], dict[str, pa.Table]],
                                                   age_files: Callable[[timedelta], None] | None = None) -> None:
    """``parquet_files()``: every Parquet file under the history ``people``, read with the store's own client.
    With ``age_files`` (which makes every file under the history that much older: local files are aged, an object
    store's cannot be, so there the store's guard ``unread_min_age_hours`` is lowered instead), Delta's log cleanup
    also removes the commit entries older than the checkpoint (``delta.logRetentionDuration`` a second): the
    removals are then in no log at all, and the purge finds the files by listing the history's storage; files
    younger than an hour may be a writer's not yet committed, hence the aging. The version the clean training set
    pins is unreadable then (its entries are gone: Delta's own limit), so only the newest is read."""
    ent = sk.Entity("person", join_keys=["k"])
    store.apply([ent, sk.FeatureView("people", [ent], [sk.Field("k", sk.Int64), sk.Field("name", sk.String)],
                                     history_retention=D)])
    _ingest(store, [2, 3], T0)
    entities = pd.DataFrame({"k": [2, 3, GONE], "event_timestamp": [T0 + 5 * D] * 3})
    clean = store.get_historical_features(entities, ["people:name"])
    clean.register("clean")  # pins a version that never held GONE: kept, and its file must stay readable
    clean_rows = clean.to_pandas()
    _ingest(store, [GONE], T0 + D)
    store.get_historical_features(entities, ["people:name"]).register("held")  # pins GONE's row: expires
    store.offline.compact("people")  # the clean pin's file is now removed too, a tombstone the checkpoint drops
    offline = store.offline
    offline._commit("people", offline._table("people"), lambda dt: dt.alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 1 seconds",
         **({"delta.logRetentionDuration": "interval 1 seconds"} if age_files else {})}, raise_if_not_exists=False))
    report = store.forget("person", [GONE])
    assert report.purged["people"].startswith("pending until") and report.offline_rows == {"people": 1}
    held = rows_of(parquet_files())
    assert len(held) == 2, held  # the file ingested with GONE's row and the compaction's file
    time.sleep(1.5)  # the removals are now past the table's deletedFileRetentionDuration
    _ingest(store, [4], T0 + 2 * D)
    offline._table("people").create_checkpoint()
    if age_files is not None:
        offline._table("people").cleanup_metadata()
        assert offline._log_entry("people", 0) is None and offline._log_entry("people", offline.version("people"))
        age_files(2 * timedelta(hours=1))
    # the premise: the newest checkpoint no longer lists the removed files, so delta-rs' own vacuum finds none
    assert offline._table("people").vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False) == []

    done = store.retention_run(now=datetime.now(UTC) + 2 * D)

    assert done.forgets_completed == [report.request]
    files = parquet_files()
    assert rows_of(files) == {}, "a file holding the erased rows is still in the history's storage"
    assert not set(held) & set(files)
    # the version the clean training set pins still reads, identically; the one that held GONE refuses
    if age_files is None:
        again = store.get_historical_features(entities, ["people:name"],
                                              snapshot=store.get_training_set("clean").snapshot)
        pd.testing.assert_frame_equal(again.to_pandas(), clean_rows)
    with pytest.raises(SnapshotExpired):
        store.get_historical_features(entities, ["people:name"], snapshot=store.get_training_set("held").snapshot)
    now = store.get_historical_features(entities.assign(k=[2, 4, GONE]), ["people:name"]).to_pandas()
    assert now["name"].iloc[:2].tolist() == ["person 2", "person 4"] and pd.isna(now["name"].iloc[2])
