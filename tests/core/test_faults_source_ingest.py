"""Incremental source ingest killed (kill -9, ``SKEWLESS_KILL_AT``) at each ingest kill point, then rerun (with new
rows arriving in between): the history holds every source row exactly once and the online store the newest
values, because the watermark is committed in the same Delta commit as the rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow.dataset as ds
import pytest

import skewless as sk

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
N = 2_000
# argv[2]: materialize.STAGE_MIN_ROWS in the child (0: the online push is staged alongside the offline append)
CHILD = ("import sys, skewless as sk, skewless.materialize as m; m.STAGE_MIN_ROWS = int(sys.argv[2]); "
         "r = sk.FeatureStore(sys.argv[1]).ingest('v'); print(r.rows)")


def rows(start: int, n: int, x: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"k": range(start, start + n),
                         "event_timestamp": [T0 + timedelta(seconds=i) for i in range(start, start + n)],
                         "x": [i + x for i in range(start, start + n)]})


def run(repo, kill_at: str | None = None, staged: bool = False) -> int | None:
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), "0" if staged else str(10**12)], env=env,
                          capture_output=True, text=True, timeout=120)
    if kill_at:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        return None
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("staged", [False, True], ids=["push_after_commit", "push_staged"])
@pytest.mark.parametrize("point", ["ingest.before_offline_commit", "ingest.after_offline_commit",
                                   "ingest.online_push_chunk"])
def test_killed_incremental_ingest_reruns_to_exactly_one_copy(tmp_path, point, staged):
    """Also with the online push staged (begun in a transaction alongside the offline append, committed after
    it): a kill before that commit leaves none of the batch online, whatever the thread had written."""
    store = sk.init_repo(tmp_path / "repo")
    src = store.repo_path / "data" / "src"
    src.mkdir(parents=True)
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)],
                                   source=sk.ParquetSource("data/src", watermark="event_timestamp"))])
    rows(0, N).to_parquet(src / "a.parquet")
    assert run(store.repo_path, staged=staged) == N
    rows(N, N).to_parquet(src / "b.parquet")
    run(store.repo_path, kill_at=point, staged=staged)  # killed in the middle of ingesting b
    if point != "ingest.online_push_chunk":  # killed before the online push was committed: none of b online
        seen = sk.FeatureStore(store.repo_path).get_online_features(["v:x"], [{"k": N}, {"k": 2 * N - 1}])
        assert seen.statuses["x"] == ["NOT_FOUND", "NOT_FOUND"]
    rows(2 * N, 10).to_parquet(src / "c.parquet")  # more rows arrive before the rerun
    run(store.repo_path, staged=staged)
    assert run(store.repo_path, staged=staged) == 0  # nothing left
    fresh = sk.FeatureStore(store.repo_path)
    files = fresh.offline.files("v", fresh.offline.version("v"))
    keys = ds.dataset(files.uris, format="parquet").to_table(columns=["k"]).column("k").to_pylist()
    assert sorted(keys) == list(range(2 * N + 10))  # every row exactly once
    got = fresh.get_online_features(["v:x"], [{"k": 0}, {"k": N + 5}, {"k": 2 * N + 9}]).to_dict()
    assert got["x"] == [0.0, N + 5.0, 2 * N + 9.0]
