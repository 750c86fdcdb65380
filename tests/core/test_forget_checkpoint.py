"""A forget's purge on a local Delta history after a checkpoint dropped the delete's removals: every Parquet file
under the history (read with pyarrow, referenced by a version or not) is free of the erased rows, and the version a
training set pins still reads (the scenario: tests/support/forget_checkpoint.py; on S3: tests/adapters/aws)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import skewless as sk
from tests.support.forget_checkpoint import check_purge_after_a_checkpoint_erases_the_rows


def test_a_purge_after_a_checkpoint_dropped_the_removals_still_erases_the_rows(tmp_path):
    store = sk.init_repo(tmp_path / "repo")
    folder = Path(store.offline.root.removeprefix("file://")) / "people"
    check_purge_after_a_checkpoint_erases_the_rows(
        store, lambda: {str(f.relative_to(folder)): pq.read_table(f) for f in folder.rglob("*.parquet")})


def test_a_purge_after_the_log_cleanup_removed_the_deletes_commit_still_erases_the_rows(tmp_path):
    store = sk.init_repo(tmp_path / "repo")
    folder = Path(store.offline.root.removeprefix("file://")) / "people"

    inflight = folder / "part-99999-written-not-yet-committed.parquet"

    def age(by: timedelta) -> None:
        for f in folder.rglob("*"):
            if f.is_file():
                at = f.stat().st_mtime - by.total_seconds()
                os.utime(f, (at, at))
        # a writer's file, not committed yet: no version reads it, but it is young, so the purge leaves it
        pq.write_table(pa.table({"k": [5], "name": ["person 5"]}), inflight)

    check_purge_after_a_checkpoint_erases_the_rows(
        store, lambda: {str(f.relative_to(folder)): pq.read_table(f) for f in folder.rglob("*.parquet")}, age)
    assert inflight.exists()
