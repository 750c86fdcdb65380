"""Batch sources read where the data lives (local paths here; S3 and OSS in tests/adapters): Parquet, CSV, Delta and
DuckDB SQL sources through `store.ingest(view)` and `skewless ingest VIEW`, and incremental ingest by a declared
watermark column, recorded in the offline commit (rerun-safe, conflict-safe)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.definitions import WRITE_ROW
from skewless.errors import ConflictError, DefinitionError, ValidationError
from skewless.offline.base import Watermark, WatermarkMoved

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
runner = CliRunner(env={"COLUMNS": "250"})


def rows(start: int, n: int) -> pd.DataFrame:
    """n rows, entity k = i, event time T0 + i hours, x = i."""
    return pd.DataFrame({"k": range(start, start + n), "event_timestamp": [T0 + timedelta(hours=i) for i in
                                                                           range(start, start + n)],
                         "x": [float(i) for i in range(start, start + n)]})


def with_view(repo: sk.FeatureStore, source: sk.DataSource, name: str = "v") -> sk.FeatureStore:
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    repo.apply([e, sk.FeatureView(name, [e], [sk.Field("x", sk.Float64)], source=source)])
    return repo


def history(store: sk.FeatureStore, view: str = "v") -> pd.DataFrame:
    files = store.offline.files(view, store.offline.version(view))
    return ds.dataset(files.uris, format="parquet").to_table().to_pandas().sort_values("k")


def data_dir(store: sk.FeatureStore) -> Path:
    d = store.repo_path / "data" / "src"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- source kinds --------------------------------------------------------------------------------------------------
def test_parquet_glob_csv_delta_and_sql_sources_ingest_the_same_rows(repo):
    d = data_dir(repo)
    rows(0, 3).to_parquet(d / "a.parquet")
    rows(3, 3).to_parquet(d / "b.parquet")
    rows(0, 6).to_csv(d / "all.csv", index=False)
    write_deltalake(str(d.parent / "delta"), pa.Table.from_pandas(rows(0, 6), preserve_index=False))
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    sql = sk.SqlSource("SELECT * FROM a WHERE x < 3 UNION ALL SELECT * FROM read_parquet('data/src/b.parquet')",
                       tables={"a": sk.ParquetSource("data/src/a.parquet")})
    views = {"pq": sk.ParquetSource("data/src/*.parquet"), "folder": sk.ParquetSource(str(d)),
             "csv": sk.CsvSource("data/src/all.csv"), "delta": sk.DeltaSource("data/delta"), "sql": sql}
    repo.apply([e] + [sk.FeatureView(n, [e], [sk.Field("x", sk.Float64)], source=s) for n, s in views.items()])
    for name in views:
        assert repo.ingest(name).rows == 6, name
        h = history(repo, name)
        assert h["k"].tolist() == list(range(6)) and h["x"].tolist() == [float(i) for i in range(6)], name
        assert h["event_timestamp"].tolist() == rows(0, 6)["event_timestamp"].tolist(), name
    # the definitions survive the registry round trip (read back from a fresh store)
    fresh = sk.FeatureStore(repo.repo_path)
    assert fresh.get_feature_view("sql").source == sql
    assert isinstance(fresh.get_feature_view("delta").source, sk.DeltaSource)


def test_files_whose_columns_differ_are_unioned_by_name(repo):
    d = data_dir(repo)
    rows(0, 2).drop(columns=["x"]).assign(y=1.0).to_parquet(d / "a.parquet")
    rows(2, 2).to_parquet(d / "b.parquet")
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    repo.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64), sk.Field("y", sk.Float64)],
                                  source=sk.ParquetSource("data/src"))])
    repo.ingest("v")
    h = history(repo)
    assert h["x"].isna().tolist() == [True, True, False, False] and h["y"].isna().tolist() == [False, False, True, True]


# -- incremental ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["parquet", "csv", "sql"])
def test_incremental_ingest_reads_only_rows_above_the_watermark(repo, kind):
    d = data_dir(repo)
    write = (lambda df, n: df.to_parquet(d / f"{n}.parquet")) if kind != "csv" else \
        (lambda df, n: df.to_csv(d / f"{n}.csv", index=False))
    source = {"parquet": sk.ParquetSource("data/src", watermark="event_timestamp"),
              "csv": sk.CsvSource("data/src", watermark="event_timestamp"),
              "sql": sk.SqlSource("SELECT * FROM t WHERE x >= 0", tables={"t": sk.ParquetSource("data/src")},
                                  watermark="event_timestamp")}[kind]
    with_view(repo, source)
    write(rows(0, 100), "a")
    assert repo.ingest("v").rows == 100
    again = repo.ingest("v")
    assert again.rows == 0 and not again.already_ingested
    write(rows(100, 5), "b")  # new events (in a new file: the old one is read too, its rows filtered out)
    assert repo.ingest("v").rows == 5
    h = history(repo)
    assert h["k"].tolist() == list(range(105))  # every row once
    assert repo.offline.watermark("v", "event_timestamp") == int((T0 + timedelta(hours=104)).timestamp() * 1e6)
    got = repo.get_online_features(["v:x"], [{"k": 104}]).to_dict()
    assert got["x"] == [104.0]


def test_incremental_ingest_skips_by_statistics_only_what_they_exclude(repo):
    """Files and row groups wholly below the watermark are left out before the scan, by their footers' statistics;
    a row group whose statistics are absent, or whose range reaches above the watermark, is read and its rows
    filtered. Every new row once, in file order, none of the old ones again."""
    import pyarrow.parquet as pq

    d = data_dir(repo)
    with_view(repo, sk.ParquetSource("data/src", watermark="event_timestamp"))

    def write(name: str, df: pd.DataFrame, **kw) -> None:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), d / name, row_group_size=4, **kw)

    write("a.parquet", rows(0, 20))
    assert repo.ingest("v").rows == 20
    write("b.parquet", rows(20, 3), write_statistics=False)  # no statistics: kept, its rows filtered by the scan
    write("c.parquet", pd.concat([rows(10, 5), rows(23, 2)]))  # old rows and new ones, a row group straddling both
    write("d.parquet", rows(5, 8))  # a late file wholly below the watermark: skipped
    got = repo.ingest("v")
    assert got.rows == 5
    h = history(repo)
    assert h["k"].tolist() == list(range(25))  # every row once
    new = h[h["k"] >= 20].sort_values(WRITE_ROW)
    assert new["k"].tolist() == [20, 21, 22, 23, 24]  # in file order: b, then c


def test_watermark_moves_only_with_a_commit_and_a_stale_one_conflicts(repo):
    with_view(repo, sk.ParquetSource("data/src", watermark="event_timestamp"))
    rows(0, 3).to_parquet(data_dir(repo) / "a.parquet")
    repo.ingest("v")
    mark = repo.offline.watermark("v", "event_timestamp")
    # a validation failure appends nothing and leaves the watermark where it was
    pd.DataFrame({"k": [9], "event_timestamp": [T0 + timedelta(days=9)], "x": ["text"]}).to_parquet(
        data_dir(repo) / "b.parquet")
    with pytest.raises(ValidationError, match="x has incompatible types"):
        repo.ingest("v")
    assert repo.offline.watermark("v", "event_timestamp") == mark
    (data_dir(repo) / "b.parquet").unlink()
    # the store's check: an append conditional on a watermark that moved appends nothing
    before = repo.offline.version("v")
    table = pa.table({"k": [1]})
    with pytest.raises(WatermarkMoved):
        repo.offline.append("v", table, batch=1, watermark=Watermark("event_timestamp", mark + 1, mark - 1))
    assert repo.offline.version("v") == before


@pytest.mark.parametrize("staged", [False, True], ids=["push_after_commit", "push_staged"])
def test_two_ingests_racing_on_one_source_ingest_each_row_once(repo, monkeypatch, staged):
    """The second of two runs that read the same watermark finds it moved at its commit: ConflictError, nothing
    appended, nothing online (a push staged alongside the append is dropped, and the online store takes writes
    again); its rerun ingests only what is new."""
    import skewless.materialize as mat

    monkeypatch.setattr(mat, "STAGE_MIN_ROWS", 0 if staged else 10**12)
    with_view(repo, sk.ParquetSource("data/src", watermark="event_timestamp"))
    rows(0, 3).to_parquet(data_dir(repo) / "a.parquet")
    stale = repo.offline.watermark("v", "event_timestamp")  # None: nothing ingested yet
    repo.ingest("v")
    rows(3, 2).to_parquet(data_dir(repo) / "b.parquet")
    read_watermark = type(repo.offline).watermark
    monkeypatch.setattr(type(repo.offline), "watermark", lambda self, view, name: stale)  # it read before the commit
    with pytest.raises(ConflictError, match="another ingest committed first"):
        repo.ingest("v")
    assert repo.get_online_features(["v:x"], [{"k": 3}, {"k": 4}]).statuses["x"] == ["NOT_FOUND", "NOT_FOUND"]
    monkeypatch.setattr(type(repo.offline), "watermark", read_watermark)
    assert repo.ingest("v").rows == 2
    assert history(repo)["k"].tolist() == list(range(5))
    assert repo.get_online_features(["v:x"], [{"k": 3}, {"k": 4}]).to_dict()["x"] == [3.0, 4.0]


def test_integer_watermark_and_created_time_watermark(repo):
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    repo.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)],
                                  source=sk.ParquetSource("data/src", watermark="seq")),
                sk.FeatureView("w", [e], [sk.Field("x", sk.Float64)],
                               source=sk.ParquetSource("data/src", created_timestamp_column="loaded_at",
                                                       watermark="loaded_at"))])
    d = data_dir(repo)
    rows(0, 4).assign(seq=range(4), loaded_at=T0).to_parquet(d / "a.parquet")
    assert repo.ingest("v").rows == 4 and repo.ingest("w").rows == 4
    # a late event (old event time) loaded later: found by the created-time and sequence watermarks
    rows(0, 1).assign(x=99.0, seq=[4], loaded_at=T0 + timedelta(days=1)).to_parquet(d / "b.parquet")
    assert repo.ingest("v").rows == 1 and repo.ingest("w").rows == 1
    assert repo.offline.watermark("v", "seq") == 4


# -- errors --------------------------------------------------------------------------------------------------------
def test_source_errors_are_typed(repo):
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    with pytest.raises(DefinitionError, match="watermark must be the name"):
        sk.ParquetSource("x.parquet", watermark="")
    with pytest.raises(DefinitionError, match="must be a ParquetSource, CsvSource or DeltaSource"):
        sk.SqlSource("SELECT 1", tables={"t": "x.parquet"})
    repo.apply([e, sk.FeatureView("none", [e], [sk.Field("x", sk.Float64)], source=sk.ParquetSource("nope/*.parquet")),
                sk.FeatureView("badsql", [e], [sk.Field("x", sk.Float64)], source=sk.SqlSource("SELEC 1")),
                sk.FeatureView("nodelta", [e], [sk.Field("x", sk.Float64)], source=sk.DeltaSource("nope")),
                sk.FeatureView("nowm", [e], [sk.Field("x", sk.Float64)],
                               source=sk.ParquetSource("data/src", watermark="missing")),
                sk.FeatureView("textwm", [e], [sk.Field("x", sk.Float64)],
                               source=sk.ParquetSource("data/src", watermark="s"))])
    rows(0, 2).assign(s="a").to_parquet(data_dir(repo) / "a.parquet")
    with pytest.raises(ValidationError, match="no Parquet file at 'nope/\\*.parquet'"):
        repo.ingest("none")
    with pytest.raises(DefinitionError, match="source query"):
        repo.ingest("badsql")
    with pytest.raises(ValidationError, match="no Delta table"):
        repo.ingest("nodelta")
    with pytest.raises(ValidationError, match="no watermark column 'missing'"):
        repo.ingest("nowm")
    with pytest.raises(ValidationError, match="watermark column 's' holds large_string; it must hold timestamps or integers"):
        repo.ingest("textwm")


def test_cli_ingest_without_a_file_reads_the_source_incrementally(repo):
    with_view(repo, sk.ParquetSource("data/src", watermark="event_timestamp"))
    rows(0, 3).to_parquet(data_dir(repo) / "a.parquet")
    first = runner.invoke(app, ["ingest", "v", "--repo", str(repo.repo_path)])
    assert first.exit_code == 0 and "Ingested 3 rows" in first.output, first.output
    second = runner.invoke(app, ["ingest", "v", "--repo", str(repo.repo_path)])
    assert second.exit_code == 0 and "Nothing new" in second.output, second.output


def test_queries_ending_in_a_comment_or_semicolon_run_whole(repo):
    """A query is run as written, not pasted into wrapping SQL, where a trailing ``-- comment`` swallowed the rest."""
    with_view(repo, sk.SqlSource("SELECT * FROM read_parquet('data/src/*.parquet') -- every export\n;",
                                 watermark="event_timestamp"))
    rows(0, 2).to_parquet(data_dir(repo) / "a.parquet")
    assert repo.ingest("v").rows == 2
    rows(2, 1).to_parquet(data_dir(repo) / "b.parquet")
    assert repo.ingest("v").rows == 1  # the watermark filter applies to the commented query too
    got = repo.get_historical_features("SELECT k, event_timestamp FROM read_parquet('data/src/b.parquet') -- new",
                                       ["v:x"]).to_pandas()
    assert got["x"].tolist() == [2.0]
