"""The one PIT definition renders to both strategies and to other engines' dialects without forking."""

import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlglot

import skewless as sk
from skewless.offline.pit import FeatureColumn, PitQuery, ViewQuery, render

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def query(point_in_time="event", ttl=timedelta(hours=3)):
    v = ViewQuery("v", ("k",), (FeatureColumn("x", "x"),), ttl, "hist_v", "v__event_timestamp")
    w = ViewQuery("w", ("k", "k2"), (FeatureColumn("y", "w__y"),), None, "hist_w")
    return PitQuery("entity", ("k", "k2", "event_timestamp", "label"), "event_timestamp", (v, w), point_in_time)


@pytest.mark.parametrize("dialect", ["spark", "hive", "presto", "trino", "bigquery"])
@pytest.mark.parametrize("pit", ["event", "available"])
def test_window_form_renders_for_other_engines(dialect, pit):
    sql = render(query(pit), dialect=dialect)
    parsed = sqlglot.parse_one(sql, read=dialect)  # valid in that dialect
    assert parsed.find(sqlglot.exp.Window) is not None
    import re

    assert bool(re.search(r"created_timestamp\W*\s*<=", sql)) == (pit == "available")
    assert "ASOF" not in sql.upper()


def test_asof_refuses_available_and_non_duckdb():
    with pytest.raises(ValueError):
        render(query("available"), strategy="asof")
    with pytest.raises(ValueError):
        render(query(), dialect="spark", strategy="asof")


def test_asof_and_window_forms_agree_on_duckdb(repo):
    rnd = random.Random(11)
    e = sk.Entity("e", join_keys=["k"])
    repo.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)],
                                  ttl=timedelta(hours=5))])
    for _ in range(3):
        repo.ingest("v", pd.DataFrame({
            "k": [rnd.randint(0, 20) for _ in range(300)],
            "event_timestamp": [T0 + timedelta(hours=rnd.randint(0, 48)) for _ in range(300)],
            "created_timestamp": [T0 + timedelta(hours=rnd.randint(0, 60)) for _ in range(300)],
            "x": list(range(300))}))
    ents = pd.DataFrame({"k": [rnd.choice([*range(22), None]) for _ in range(1000)],
                         "event_timestamp": [T0 + timedelta(hours=rnd.randint(-2, 60)) for _ in range(1000)]})
    view = repo.get_feature_view("v")
    files = {"v": repo.offline.files("v", repo.offline.version("v"))}
    results = {}
    for strategy in ("asof", "window"):
        con = repo.engine.connect()
        sql = repo.engine.pit_sql(con, ents, [(view, ["x"])], files, timestamp_column="event_timestamp",
                                  full_feature_names=False, point_in_time="event", event_timestamps=True,
                                  strategy=strategy).ordered
        results[strategy] = con.sql(sql).to_arrow_table().to_pandas()
    pd.testing.assert_frame_equal(results["asof"], results["window"])
    assert results["asof"]["x"].notna().sum() > 100  # the comparison is not vacuous
