"""MaxCompute tables as batch sources, on the local MaxCompute emulator, the table written with pyodps as users do:
a partitioned table read through its partition condition, incrementally by a BIGINT watermark (a rerun reads
nothing), into the embedded Delta history; bad tables and conditions are typed errors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from odps import ODPS
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import EngineError, NotFoundError, ValidationError
from tests.support.object_store import sources_repo

T0 = datetime(2024, 1, 1)  # DATETIME: a wall time, the emulator's (and this machine's) zone is UTC


@pytest.fixture
def odps(maxcompute_endpoint):
    return ODPS(**maxcompute_endpoint)


@pytest.fixture
def table(odps):
    name = f"src_{uuid.uuid4().hex[:12]}"
    odps.execute_sql(f"CREATE TABLE {name} (k BIGINT, event_timestamp DATETIME, x DOUBLE, seq BIGINT, note STRING) "
                     "PARTITIONED BY (ds STRING)")
    yield name
    odps.execute_sql(f"DROP TABLE IF EXISTS {name}")


def put(odps, table: str, ds: str, first: int, n: int) -> None:
    odps.write_table(table, [[i, T0 + timedelta(hours=i), float(i), i, "n"] for i in range(first, first + n)],
                     partition=f"ds='{ds}'", create_partition=True)


@pytest.fixture
def store(tmp_path, maxcompute_endpoint):
    """An embedded repo whose MaxCompute source options come from skewless.yaml's `sources:`."""
    return sources_repo(tmp_path, {"maxcompute": dict(maxcompute_endpoint)})


def with_view(store: sk.FeatureStore, source: sk.DataSource) -> sk.FeatureStore:
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)], source=source)])
    return store


def history_keys(store: sk.FeatureStore) -> list[int]:
    got = store.get_historical_features(
        "SELECT range AS k, TIMESTAMPTZ '2030-01-01 00:00:00+00' AS event_timestamp FROM range(0, 20)", ["v:x"])
    df = got.to_pandas()
    return sorted(int(k) for k, x in zip(df["k"], df["x"]) if x == x)


def test_partition_condition_and_incremental_ingest_by_a_bigint_watermark(store, odps, table):
    put(odps, table, "20240101", 0, 3)
    put(odps, table, "20240102", 3, 3)
    put(odps, table, "20231231", 10, 2)  # outside the partition condition: never read
    with_view(store, sk.MaxComputeSource(table, partition="ds >= '20240101'", watermark="seq"))
    first = store.ingest("v")
    assert first.rows == 6
    assert history_keys(store) == [0, 1, 2, 3, 4, 5]
    assert store.ingest("v").rows == 0  # a rerun reads nothing: every row is at or below the watermark
    put(odps, table, "20240103", 6, 2)
    assert store.ingest("v").rows == 2
    assert history_keys(store) == [0, 1, 2, 3, 4, 5, 6, 7]
    fv = sk.FeatureStore(store.repo_path).get_feature_view("v")  # the definition survives the registry
    assert fv.source == sk.MaxComputeSource(table, partition="ds >= '20240101'", watermark="seq")
    # the event times arrived as the instants written (DATETIME wall times in UTC)
    at = store.get_historical_features(
        "SELECT 7 AS k, TIMESTAMPTZ '2024-01-01 07:00:00+00' AS event_timestamp", ["v:x"]).to_pandas()
    assert at["x"].tolist() == [7.0]


def test_whole_table_without_a_watermark_through_the_cli(store, odps, table):
    put(odps, table, "20240101", 0, 4)
    with_view(store, sk.MaxComputeSource(table))
    out = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["ingest", "v", "--repo", str(store.repo_path)])
    assert out.exit_code == 0 and "Ingested 4 rows" in out.output, out.output
    assert history_keys(store) == [0, 1, 2, 3]


def test_maxcompute_sql_query_source_incremental(store, odps, table):
    """A MaxCompute SQL query (ending in a comment) as the source, the watermark condition put around it."""
    put(odps, table, "20240101", 0, 3)
    query = f"SELECT k, event_timestamp, x * 2 AS x, seq FROM {table} WHERE ds = '20240101' -- day one"
    with_view(store, sk.MaxComputeSource(query=query, watermark="seq"))
    assert store.ingest("v").rows == 3
    assert store.ingest("v").rows == 0
    put(odps, table, "20240101", 3, 2)
    assert store.ingest("v").rows == 2
    got = store.get_historical_features(
        "SELECT 4 AS k, TIMESTAMPTZ '2030-01-01 00:00:00+00' AS event_timestamp", ["v:x"]).to_pandas()
    assert got["x"].tolist() == [8.0]
    assert history_keys(store) == [0, 1, 2, 3, 4]


def test_maxcompute_source_errors_are_typed(store, odps, table):
    put(odps, table, "20240101", 0, 1)
    with pytest.raises(sk.errors.DefinitionError, match="table 'a-b' is invalid"):
        sk.MaxComputeSource("a-b")
    with pytest.raises(sk.errors.DefinitionError, match="a table or a query"):
        sk.MaxComputeSource(table, query="SELECT 1")
    with pytest.raises(sk.errors.DefinitionError, match="one SQL condition"):
        sk.MaxComputeSource(table, partition="ds = '1'; DROP TABLE x")
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    views = {"missing": sk.MaxComputeSource("no_such_table_here"),
             "textwm": sk.MaxComputeSource(table, watermark="note"),
             "nowm": sk.MaxComputeSource(table, watermark="loaded"),
             "badcond": sk.MaxComputeSource(table, partition="no_such_column = 1"),
             "querywm": sk.MaxComputeSource(query=f"SELECT k, event_timestamp, x FROM {table}", watermark="seq")}
    store.apply([e] + [sk.FeatureView(n, [e], [sk.Field("x", sk.Float64)], source=s) for n, s in views.items()])
    with pytest.raises(NotFoundError, match="no_such_table_here"):
        store.ingest("missing")
    with pytest.raises(ValidationError, match="holds string; it must be an integer column"):
        store.ingest("textwm")
    with pytest.raises(ValidationError, match="no watermark column 'loaded'"):
        store.ingest("nowm")
    with pytest.raises(EngineError, match="MaxCompute"):
        store.ingest("badcond")
    with pytest.raises(ValidationError, match="the MaxCompute source query: no watermark column 'seq'"):
        store.ingest("querywm")
    for name in views:
        assert store.offline.version(name) is None
