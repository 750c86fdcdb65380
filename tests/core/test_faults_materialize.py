"""Fault injection on materialize: kill -9 at named points (``SKEWLESS_KILL_AT``, skewless/faults.py) between
chunks, the online store down or hung (a redis-server of this test's own), then a rerun; asserts the exact online
state and row counts: every entity's winner online once, the checkpoint counting each row once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pandas as pd
import pytest
from tests.core.test_faults_ingest import T, make_repo, own_redis, redis_repo  # noqa: F401 - own_redis is a fixture

from skewless.errors import StoreUnavailable

N = 1_200  # entities; two rows each, the newer one wins
CHUNK = 250  # rows per materialize chunk: several chunks, several checkpoints

START, END = T - timedelta(days=31), T + timedelta(days=1)

# The materialize a child process runs (to be killed): the same window, chunks of CHUNK rows.
CHILD = """
import sys
from datetime import datetime
import skewless as sk
start, end = datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
sk.FeatureStore(sys.argv[1]).materialize(start, end, chunk_rows=int(sys.argv[4]))
"""


def fill(store) -> None:
    """History only (ingest pushes online too: the online rows are removed so materialize has them all to do)."""
    rows = pd.DataFrame({"k": list(range(N)) * 2, "event_timestamp": [T] * N + [T + timedelta(hours=1)] * N,
                         "x": [k * 1.0 for k in range(N)] + [k * 10.0 for k in range(N)]})
    store.ingest("v", rows)
    store.online.drop_view("v")


def run_child(repo, kill_at):
    env = {**os.environ, "SKEWLESS_KILL_AT": kill_at}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), START.isoformat(), END.isoformat(),
                           str(CHUNK)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def assert_online_exact(store) -> None:
    got = store.get_online_features(["v:x"], [{"k": k} for k in range(N + 5)]).to_dict()
    assert got["x"] == [k * 10.0 for k in range(N)] + [None] * 5


@pytest.mark.parametrize("kill_at, done_before", [
    ("materialize.before_checkpoint:3", 2 * CHUNK),  # the 3rd chunk written, its checkpoint not saved
    ("materialize.after_checkpoint:2", 2 * CHUNK),  # two chunks checkpointed
    ("materialize.after_checkpoint:5", N),  # the last (short) chunk checkpointed, the job not marked done
])
def test_kill_mid_materialize_then_rerun_resumes_exactly(tmp_path, kill_at, done_before):
    store = make_repo(tmp_path / "repo")
    fill(store)
    run_child(tmp_path / "repo", kill_at)
    state = json.loads(store.online.get_meta("materialize/v"))
    assert state["rows_done"] == done_before and not state["done"]
    [res] = store.materialize(START, END, chunk_rows=CHUNK)  # the rerun (no process of its own needed)
    # it skips exactly what the checkpoint covers and writes the rest: each row counted once
    assert (res.rows, res.resumed_from) == (N, done_before)
    assert json.loads(store.online.get_meta("materialize/v"))["done"] is True
    assert_online_exact(store)


def test_online_store_down_or_hung_fails_materialize_fast_and_a_rerun_completes(tmp_path, own_redis):  # noqa: F811
    server = own_redis()
    store = redis_repo(tmp_path, own_redis)
    fill(store)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.materialize(START, END, chunk_rows=CHUNK)
        assert time.monotonic() - t < 4.0
    finally:
        os.kill(server.pid, signal.SIGCONT)
    server.kill()
    server.wait()
    t = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.materialize(START, END, chunk_rows=CHUNK)
    assert time.monotonic() - t < 3.0
    own_redis()  # back, empty (no persistence): the rerun starts over and writes every winner once
    [res] = store.materialize(START, END, chunk_rows=CHUNK)
    assert res.rows == N
    assert_online_exact(store)
