"""Write-time statistics (issue 18): exact counts and moments against pandas, KLL quantiles within the sketch's bound,
version N = the merge of the appends up to N across the cumulative records, training sets, the CLI, a crash before
the commit, the off switch, and every write path (ingest, source ingest, push, stream micro-batches)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

import skewless as sk
from skewless import statistics as stats_mod
from skewless.cli.main import app
from skewless.errors import NotFoundError, StatisticsUnavailable
from skewless.offline import delta_stats
from tests.core.test_faults_stream import make_repo as stream_repo, run_child, write_stream

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def make(tmp_path, **config) -> sk.FeatureStore:
    store = sk.init_repo(tmp_path / "repo")
    for k, v in config.items():
        setattr(store.config, k, v)
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    store.apply([user, sk.FeatureView("v", [user], [
        sk.Field("x", sk.Float64), sk.Field("i", sk.Int64), sk.Field("s", sk.String), sk.Field("b", sk.Bool),
        sk.Field("t", sk.UnixTimestamp)])])
    return store


def batch(seed: int, n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(seed, 3, n)
    x[rng.random(n) < 0.1] = np.nan  # nulls (pandas NaN becomes null on ingest)
    s = rng.choice(["red", "green", "blue", "a-rare-one"], n, p=[0.5, 0.3, 0.19, 0.01]).astype(object)
    s[rng.random(n) < 0.05] = None
    b = pd.array(rng.random(n) < 0.3, dtype="boolean")
    b[rng.random(n) < 0.02] = pd.NA
    return pd.DataFrame({"user_id": rng.integers(0, 50, n), "event_timestamp": T0 + pd.to_timedelta(seed, "h"),
                         "x": x, "i": rng.integers(-1000, 1000, n), "s": s, "b": b,
                         "t": T0 + pd.to_timedelta(rng.integers(0, 10_000, n), "s")})


def check_against_pandas(got: stats_mod.ViewStatistics, df: pd.DataFrame) -> None:
    assert got.rows == len(df)
    for name in ("x", "i"):
        f, col = got.features[name], df[name].astype(float)
        assert (f.count, f.nulls) == (len(col), int(col.isna().sum()))
        assert f.null_rate == pytest.approx(col.isna().mean())
        assert (f.min, f.max) == (col.min(), col.max())
        assert f.mean == pytest.approx(col.mean(), rel=1e-12)
        assert f.stddev == pytest.approx(col.std(), rel=1e-9)  # sample stddev, as pandas
        assert f.kll.n == col.notna().sum()
    s = got.features["s"]
    assert (s.count, s.nulls) == (len(df), int(df["s"].isna().sum()))
    counts = df["s"].value_counts()
    assert s.top(2) == list(counts.items())[:2]  # exact while there are fewer values than the sketch tracks
    assert round(s.distinct) == df["s"].nunique()
    b = got.features["b"]
    assert (b.count, b.nulls) == (len(df), int(df["b"].isna().sum()))
    assert b.mean == pytest.approx(df["b"].dropna().astype(float).mean())
    t = got.features["t"]
    assert (t.min, t.max) == (df["t"].min().to_pydatetime(), df["t"].max().to_pydatetime())


def test_counts_nulls_min_max_mean_stddev_are_exact(tmp_path):
    store = make(tmp_path)
    parts = []
    for seed in range(3):
        parts.append(batch(seed))
        r = store.ingest("v", parts[-1])
        check_against_pandas(store.get_statistics("v", r.version), pd.concat(parts, ignore_index=True))
    latest = store.get_statistics("v")
    assert latest.version == store.offline.version("v") and latest.view == "v"
    check_against_pandas(latest, pd.concat(parts, ignore_index=True))


def test_kll_quantiles_are_within_the_sketch_error_bound(tmp_path):
    store = make(tmp_path)
    rng = np.random.default_rng(7)
    values = []
    for seed in range(4):
        df = batch(seed, 50_000)
        df["x"] = rng.lognormal(0, 1.5, len(df))  # skewed: quantiles far from the mean
        values.append(df["x"].to_numpy())
        store.ingest("v", df)
    allx = np.sort(np.concatenate(values))
    f = store.get_statistics("v").features["x"]
    eps = f.kll.normalized_rank_error(False)
    assert eps < 0.02
    for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        rank = np.searchsorted(allx, f.quantile(q), side="right") / len(allx)
        assert abs(rank - q) <= eps, (q, rank, eps)


def test_version_n_is_the_merge_of_the_appends_up_to_n_across_cumulative_records(tmp_path, monkeypatch):
    monkeypatch.setattr(stats_mod, "CUMULATIVE_EVERY", 3)
    store = make(tmp_path)
    parts, versions = [], []
    for seed in range(11):
        parts.append(batch(seed, 60))
        versions.append(store.ingest("v", parts[-1]).version)
    dt = DeltaTable(str(store.offline._uri("v")))
    totals = [v for v in range(dt.version() + 1) if delta_stats.STATS_TOTAL in store.offline._commit_info("v", v)]
    assert totals[0] == 0 and len(totals) >= 3  # the first append, then every 3 versions or so
    assert all(b - a >= 3 for a, b in zip(totals, totals[1:]))
    for k, v in enumerate(versions):
        # reading merges one cumulative record and at most CUMULATIVE_EVERY per-append ones
        assert len(store.offline.statistics_records("v", v)) <= 1 + 3
        check_against_pandas(store.get_statistics("v", v), pd.concat(parts[:k + 1], ignore_index=True))
    # a version between appends (a table-properties commit) has its newest append's statistics
    between = [v for v in range(versions[-1]) if v not in versions and v > versions[0]]
    for v in between:
        before = max(k for k, a in enumerate(versions) if a < v)
        assert store.get_statistics("v", v).rows == sum(len(p) for p in parts[:before + 1])


def test_merge_of_records_equals_statistics_of_all_rows():
    # the merge is what makes per-append records enough: commutative, and a feature missing from one record (added
    # to the view later) counts that record's rows as nulls, as the history reads them
    class V:
        stored_fields = [sk.Field("x", sk.Float64)]
        name = "v"

    import pyarrow as pa

    a = stats_mod.compute(V, pa.table({"x": [1.0, 2.0, None]}))
    b = stats_mod.compute(V, pa.table({"x": [10.0, 4.0]}))
    c = stats_mod.compute(type("W", (), {"stored_fields": [], "name": "v"}), pa.table({"y": [1, 2]}))
    for order in ([a, b, c], [c, b, a]):
        got = stats_mod.to_view_statistics("v", 0, stats_mod.merge(order)).features["x"]
        assert (got.count, got.nulls, got.min, got.max) == (7, 3, 1.0, 10.0)
        assert got.mean == pytest.approx(4.25) and got.stddev == pytest.approx(np.std([1, 2, 10, 4], ddof=1))
    again = stats_mod.decode(stats_mod.encode(stats_mod.merge([a, b])))
    assert stats_mod.to_view_statistics("v", 0, again).features["x"].quantile(1.0) == 10.0


def test_a_training_set_has_the_statistics_of_its_snapshot(tmp_path):
    store = make(tmp_path)
    first = batch(1)
    store.ingest("v", first)
    ents = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [T0 + pd.Timedelta(days=1)] * 3})
    store.get_historical_features(ents, ["v:x", "v:s"]).register("ts1")
    store.ingest("v", batch(2))  # after the snapshot: not in the training set's statistics
    got = store.get_training_set_statistics("ts1")
    assert set(got) == {"v:x", "v:s"}
    assert got["v:x"].count == len(first) and got["v:x"].mean == pytest.approx(first["x"].mean())
    assert store.get_training_set_statistics("ts1", 1)["v:s"].count == len(first)
    with pytest.raises(NotFoundError):
        store.get_training_set_statistics("ts1", 2)
    r = CliRunner().invoke(app, ["stats", "--training-set", "ts1", "--repo", str(store.repo_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["features"]["v:x"]["count"] == len(first)


def test_cli_prints_a_table_and_json(tmp_path):
    store = make(tmp_path)
    df = batch(3)
    r1 = store.ingest("v", df)
    store.ingest("v", batch(4))
    cli = CliRunner()
    out = cli.invoke(app, ["stats", "v", "--version", str(r1.version), "--repo", str(store.repo_path), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["version"] == r1.version and doc["rows"] == len(df)
    x = doc["features"]["x"]
    assert x["count"] == len(df) and x["mean"] == pytest.approx(df["x"].mean())
    assert set(x["quantiles"]) >= {"p50", "p99"} and doc["features"]["s"]["top"][0]["value"] == "red"
    table = cli.invoke(app, ["stats", "v", "--repo", str(store.repo_path)])
    assert table.exit_code == 0, table.output
    for word in ("feature", "null rate", "p50", "p99", "stddev", "distinct", "top items", "red"):
        assert word in table.output
    assert f"{2 * len(df):,} rows written" in table.output
    bad = cli.invoke(app, ["stats", "nope", "--repo", str(store.repo_path)])
    assert bad.exit_code == 1 and "NotFoundError" in bad.output


def test_unknown_view_and_version_are_not_found(tmp_path):
    store = make(tmp_path)
    store.ingest("v", batch(1))
    with pytest.raises(NotFoundError) as err:
        store.get_statistics("nope")
    assert not isinstance(err.value, StatisticsUnavailable)
    with pytest.raises(NotFoundError):
        store.get_statistics("v", 99)


def test_statistics_off_stores_nothing_and_reading_says_so(tmp_path):
    store = make(tmp_path, statistics=False)
    r = store.ingest("v", batch(1))
    assert delta_stats.STATS not in store.offline._commit_info("v", r.version)
    with pytest.raises(StatisticsUnavailable, match="without them") as err:
        store.get_statistics("v")
    assert (err.value.view, err.value.version) == ("v", store.offline.version("v"))
    # turned on later: the rows written without statistics are still not described, so no version after is
    store.config.statistics = True
    r2 = store.ingest("v", batch(2))
    assert delta_stats.STATS in store.offline._commit_info("v", r2.version)
    with pytest.raises(StatisticsUnavailable, match=f"version {r.version} was appended without them"):
        store.get_statistics("v", r2.version)
    # and the switch in skewless.yaml
    (store.repo_path / "skewless.yaml").write_text((store.repo_path / "skewless.yaml").read_text()
                                                   + "statistics: false\n")
    assert sk.FeatureStore(store.repo_path).config.statistics is False


def test_a_failure_computing_statistics_commits_nothing(tmp_path, monkeypatch):
    store = make(tmp_path)
    store.ingest("v", batch(1))
    head = store.offline.version("v")

    def boom(view, rows):
        raise RuntimeError("statistics failed")

    monkeypatch.setattr(stats_mod, "compute", boom)
    with pytest.raises(RuntimeError, match="statistics failed"):
        store.ingest("v", batch(2), online=False)
    assert store.offline.version("v") == head  # nothing committed, nothing half-written
    monkeypatch.undo()
    assert store.get_statistics("v").rows == len(batch(1))


def test_stream_micro_batches_carry_statistics_and_a_kill_before_a_commit_leaves_none(tmp_path):
    repo, folder = tmp_path / "repo", tmp_path / "s"
    store = stream_repo(repo)
    write_stream(folder)
    # killed with a micro-batch's statistics in hand but its commit not made; the rerun commits it once
    run_child(repo, folder, "offline.statistics_ready:3")
    committed = store.offline.version("v")
    assert store.get_statistics("v", committed).rows == 2 * 97  # two micro-batches of 97 records committed
    run_child(repo, folder, None)
    got = store.get_statistics("v").features["eid"]
    assert (got.count, got.nulls, got.min, got.max) == (2000, 0, 0, 1999)  # every event once, none twice
    assert got.mean == pytest.approx(999.5) and got.stddev == pytest.approx(np.arange(2000).std(ddof=1))


def test_source_ingest_and_push_record_statistics(tmp_path):
    store = sk.init_repo(tmp_path / "repo")
    src = tmp_path / "repo" / "data" / "src"
    src.mkdir(parents=True)
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    store.apply([user, sk.FeatureView("src_view", [user], [sk.Field("x", sk.Float64)],
                                      source=sk.ParquetSource("data/src", watermark="event_timestamp"))])
    df = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [T0, T0, T0 + pd.Timedelta("1h")],
                       "x": [1.0, 2.0, 6.0]})
    df.to_parquet(src / "a.parquet")
    store.ingest("src_view")
    (df.assign(event_timestamp=T0 + pd.Timedelta("2h"), x=[10.0, 20.0, 30.0])).to_parquet(src / "b.parquet")
    store.ingest("src_view")  # incremental: only the new file's rows
    x = store.get_statistics("src_view").features["x"]
    assert (x.count, x.min, x.max, x.mean) == (6, 1.0, 30.0, pytest.approx(69 / 6))
    pushed = store.push("src_view", df.assign(x=[100.0, 100.0, 100.0]), to="offline")
    assert store.get_statistics("src_view", pushed[0].version).features["x"].max == 100.0
    before = store.offline.version("src_view")
    store.push("src_view", df, to="online")  # online only: no history version, so no new statistics
    assert store.offline.version("src_view") == before


def test_a_frequent_value_in_high_cardinality_strings_is_found_and_distinct_is_close(tmp_path):
    store = sk.init_repo(tmp_path / "repo")
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    store.apply([user, sk.FeatureView("h", [user], [sk.Field("s", sk.String)], online=False)])
    n = 40_000
    for part in range(2):
        s = np.array([f"id-{part}-{i}" for i in range(n)], dtype=object)
        s[::10] = "hot"  # 10% of rows
        store.ingest("h", pd.DataFrame({"user_id": np.arange(n), "event_timestamp": T0, "s": s}), online=False)
    f = store.get_statistics("h").features["s"]
    assert f.top(1)[0][0] == "hot" and abs(f.top(1)[0][1] - 2 * n // 10) <= 2 * n * 3.5 / 128
    distinct = 2 * (n - n // 10) + 1
    assert math.isclose(f.distinct, distinct, rel_tol=abs(f.hll.get_rel_err(True, True, f.hll.lg_config_k, 3)))


@pytest.mark.parametrize("n", [50, 3_000, 30_000, 120_000])
def test_the_vectorised_hll_is_the_sketch_of_feeding_every_value(n):
    # hll_batch hashes in numpy and feeds one value per register: the registers must be exactly DataSketches' own
    # (any length: MurmurHash's 16-byte blocks and tails; UTF-8; empty strings and nulls ignored as update() does)
    import datasketches as ds
    import pyarrow as pa

    from skewless import hll_batch

    rng = np.random.default_rng(n)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789é漢字-")
    values = ["".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(n)]
    values[::7] = [None] * len(values[::7])
    values[::11] = [""] * len(values[::11])
    want = ds.hll_sketch(12, ds.HLL_4)
    for v in values[5:]:
        if v is not None:
            want.update(v)
    got = hll_batch.sketch(hll_batch.prepare(pa.array(values).slice(5)), 12)  # a slice: offsets not from 0
    assert got.serialize_compact() == hll_batch._mark_out_of_order(want).serialize_compact()
    distinct = len({v for v in values[5:] if v})
    assert abs(got.get_estimate() - distinct) <= 3 * abs(got.get_rel_err(True, True, 12, 1)) * distinct + 1


def test_compaction_keeps_the_statistics_and_an_added_feature_counts_older_rows_as_null(tmp_path):
    store = make(tmp_path)
    first = batch(1)
    store.ingest("v", first)
    store.ingest("v", batch(2))
    before = store.get_statistics("v")
    done = store.compact("v")
    assert done["version"] > before.version  # a new version, the same rows: the same statistics
    after = store.get_statistics("v")
    assert after.version == done["version"] and after.rows == before.rows
    a, b = after.features["x"], before.features["x"]
    assert (a.count, a.nulls, a.min, a.max, a.mean, a.stddev, a.kll.n) == (b.count, b.nulls, b.min, b.max, b.mean,
                                                                         b.stddev, b.kll.n)
    # KLL merges pick their compaction offsets at random: two reads agree within the sketch's bound, not bit for bit
    assert a.kll.get_rank(b.quantile(0.5)) == pytest.approx(0.5, abs=a.kll.normalized_rank_error(False))
    # a feature added to the view: the rows written before it read as null, and so count as nulls
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    view = store.get_feature_view("v")
    store.apply([user, sk.FeatureView("v", [user], list(view.schema) + [sk.Field("y", sk.Float64)])])
    store.ingest("v", batch(3).assign(y=1.5))
    y = store.get_statistics("v").features["y"]
    assert (y.count, y.nulls, y.mean) == (3 * len(first), 2 * len(first), 1.5)
