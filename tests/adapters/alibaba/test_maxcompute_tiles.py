"""Online tiles of aggregated views maintained with the MaxCompute engine (histories in the local MaxCompute
emulator, through the real pyodps client) and a Redis / TairHash online store: the online invariant suite
(``AggregationInvariant``: ingest, a late event, a correction by event_id, a replay, a materialize backfill), each
check comparing online values with the spec oracle over the committed MaxCompute history and with the MaxCompute
training set at ``t = now``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pyarrow as pa
import pytest
import sqlglot
from tests.core.test_faults_agg_ingest import clean  # noqa: F401 - the fixture: one clean DuckDB run
from tests.support.agg_online import D, H, T0, AggRepo, around
from tests.support.conformance.online import AggregationInvariant

from skewless.adapters.alibaba.maxcompute import MaxComputeEngine
from skewless.adapters.alibaba.maxcompute_sql import MaxCompute
from skewless.adapters.alibaba.tair import from_url as tair_from_url
from skewless.adapters.redis.store import from_url
from skewless.aggregation import maintain
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW


def mc_offline(endpoint: dict) -> dict:
    """The ``offline`` section of a repo whose histories live in MaxCompute, under a table prefix of their own."""
    opts = {k: endpoint[k] for k in ("endpoint", "tunnel_endpoint", "access_id", "secret_access_key")}
    return {"url": f"maxcompute://{endpoint['project']}", "engine": "maxcompute",
            "storage_options": {**opts, "table_prefix": f"a{uuid.uuid4().hex[:10]}_"}}


class MaxComputeAggRepo(AggRepo):
    compare_training = True  # online == the training set MaxCompute computes at t = now, as well as the oracle

    def history_rows(self, files) -> list[dict]:
        """The snapshot's rows, read back from MaxCompute with the engine's own snapshot-filtered relation."""
        engine, view = self.fs.engine, self.view
        assert isinstance(engine, MaxComputeEngine)
        client = engine.client_of(files)
        ts = pa.timestamp("us", tz="UTC")
        schema = pa.schema([*((k, d.arrow) for k, d in view.join_key_dtypes.items()), (EVENT_TS, ts),
                            (CREATED_TS, ts), (WRITE_BATCH, pa.int64()), (WRITE_ROW, pa.int64()),
                            *((f.name, f.dtype.arrow) for f in view.stored_fields)])
        sql = sqlglot.transpile(f"SELECT * FROM {engine.history_relation(view, files)} AS h", read="duckdb",
                                write=MaxCompute)[0]
        instance = client.execute(sql, "read the history back")
        return pa.Table.from_batches(list(client.result(instance, "read the history back", schema)),
                                     schema=schema).to_pylist()


class _OnMaxCompute(AggregationInvariant):
    @pytest.fixture(autouse=True)
    def _maxcompute(self, maxcompute_endpoint):
        self.endpoint = maxcompute_endpoint

    def agg_repo(self, store, tmp_path, **kw) -> AggRepo:
        r = MaxComputeAggRepo(tmp_path / "repo", store, offline=mc_offline(self.endpoint), **kw)
        assert isinstance(r.fs.engine, MaxComputeEngine)
        return r


class TestMaxComputeTilesOnRedis(_OnMaxCompute):
    @pytest.fixture
    def store(self, redis_url):
        s = from_url(redis_url, None, {"key_prefix": "t" + uuid.uuid4().hex[:12]})
        yield s
        s.close()


class TestMaxComputeTilesOnTairHash(_OnMaxCompute):
    @pytest.fixture
    def store(self, tair_url):
        s = tair_from_url(tair_url, None, {"key_prefix": "t" + uuid.uuid4().hex[:12]})
        assert s.uses_tairhash
        yield s
        s.close()


def test_tile_scan_runs_in_maxcompute_and_leaves_no_temporary_table(tmp_path, maxcompute_endpoint, redis_url):
    """The tiles' queries run in MaxCompute (its instances hold the transpiled tile SQL) and the uploaded ranges are
    dropped when the write is done."""
    online = from_url(redis_url, None, {"key_prefix": "t" + uuid.uuid4().hex[:12]})
    try:
        r = MaxComputeAggRepo(tmp_path / "repo", online, offline=mc_offline(maxcompute_endpoint))
        client = r.fs.offline.client
        prefix = r.fs.offline.settings.table_prefix
        ran = []
        run = client.run
        client.run = lambda sql, what: (ran.append((what, sql)), run(sql, what))[1]
        r.clock = T0 + 2 * D
        r.ingest(AggregationInvariant.txns(T0, 1, 6, "a"))  # 6 events, 5 h apart
        whats = [w for w, _ in ran]
        assert "tiles touched in 'txn'" in whats and "tile events of 'txn'" in whats
        events_sql = next(s for w, s in ran if w == "tile events of 'txn'")
        assert "ROW_NUMBER() OVER" in events_sql and "`" in events_sql  # the one definition, in MaxCompute's dialect
        assert client.tables(f"{prefix}t_") == []
        assert r.fs.get_online_features(["txn:count_7d"], [{"card": 1}], now=r.clock).values["count_7d"] == [6]
    finally:
        online.close()


def test_entity_chunks_each_read_their_own_ranges(tmp_path, maxcompute_endpoint, redis_url):
    """One entity per chunk (MaxCompute's default chunk is far larger than these tests' entities): every chunk's
    ranges are appended to the scan's one temporary table and each chunk's query reads its own entities' events,
    so the tiles written chunk by chunk equal the oracle and the training set."""
    online = from_url(redis_url, None, {"key_prefix": "t" + uuid.uuid4().hex[:12]})
    try:
        r = MaxComputeAggRepo(tmp_path / "repo", online, offline=mc_offline(maxcompute_endpoint))
        r.clock = T0 + 10 * D
        txns = AggregationInvariant.txns
        r.ingest(txns(T0, 1, 30, "a") + txns(T0, 2, 20, "a", step=7 * H) + txns(T0 + D, 4, 12, "a"))
        online.drop_view(r.view.name)
        files = r.fs.offline.files(r.view.name, r.fs.offline.version(r.view.name))
        done = []
        written = maintain.refresh(r.fs, r.view, files, "true", chunk=1, on_chunk=done.append)
        assert done == [1, 2, 3] and written > 0
        r.check([1, 2, 3, 4], around(r.clock, r.clock + 2 * D))
    finally:
        online.close()


@pytest.mark.parametrize("point", ["ingest.after_offline_commit", "ingest.online_push_chunk:2"])
def test_kill_during_an_aggregated_maxcompute_ingest_then_rerun_equals_a_clean_duckdb_run(
        tmp_path, maxcompute_endpoint, clean, point):  # noqa: F811 - the imported fixture
    """kill -9 mid-ingest (tiles computed in MaxCompute, 10 entities per chunk), then a rerun: the online values
    are those of one clean run on the DuckDB engine (``clean``), and the oracle's."""
    from tests.core import test_faults_agg_ingest as faults

    repo = MaxComputeAggRepo(tmp_path / "repo", None, clock=None, offline=mc_offline(maxcompute_endpoint))
    child = faults.CHILD.replace("maintain.ENTITIES_PER_CHUNK = 10", "maintain.ENTITIES_PER_CHUNK = 10\nfrom "
                                 "skewless.adapters.alibaba.maxcompute import MaxComputeTileScan\n"
                                 "MaxComputeTileScan.entities_per_chunk = 10")
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    args = [sys.executable, "-c", child, str(repo.fs.repo_path), str(faults.N), str(faults.CARDS), "b-1"]
    killed = subprocess.run(args, env={**env, "SKEWLESS_KILL_AT": point}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(repo.history()) == faults.N  # the rerun appended nothing a second time
    for t, want in clean.items():
        assert faults.same(faults.online_values(repo, t), want)
    repo.check(list(range(faults.CARDS + 1)), [faults.NOW])
