"""Aggregated views in DuckDB training sets: hand cases of the spec (transformations.md section 1) and the paths of
the DuckDB engine the conformance suite does not walk (streamed results, Parquet entity files, name collisions)."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import skewless as sk
from skewless.aggregation import AggregatedView, Aggregation
from skewless.aggregation.sql import SUPERSEDED, events
from skewless.errors import ValidationError
from tests.support.conformance.offline_agg import HOUR_US, SCHEMA, agg_view, at


def _store(tmp_path, view, ent, batches):
    store = sk.init_repo(tmp_path / "repo")
    store.apply([ent, view])
    for b, rows in enumerate(batches):
        store.ingest(view.name, pa.Table.from_pylist(rows, schema=SCHEMA), batch_id=f"b{b}")
    return store


def _row(us, created=None, x=None, n=None, s=None, eid=None, k=1):
    return {"k": k, "event_timestamp": at(us), "created_timestamp": at(us if created is None else created), "x": x,
            "n": n, "s": s, "eid": eid}


def test_last_takes_the_newest_row_even_when_null_and_last_k_skips_nulls_newest_first(tmp_path):
    ent, view = agg_view("v", HOUR_US, [HOUR_US], False, ("last", "last_k(2)", "count"))
    # three rows tie on event time: created decides, then the write order (the second batch's row)
    store = _store(tmp_path, view, ent, [[_row(10, 10, x=1.0), _row(20, 20, x=2.0), _row(20, 30, x=3.0)],
                                         [_row(20, 30, x=None)]])
    got = store.get_historical_features(pd.DataFrame({"k": [1, 1], "event_timestamp": [at(20), at(15)]}),
                                        ["v:x_last_1h", "v:x_last_2_1h", "v:x_count_1h"]).to_arrow()
    assert got.column("x_last_1h").to_pylist() == [None, 1.0]
    assert got.column("x_last_2_1h").to_pylist() == [[3.0, 2.0], [1.0]]
    assert got.column("x_count_1h").to_pylist() == [3, 1]
    assert got.schema.field("x_last_2_1h").type == pa.list_(pa.float64())


def test_nan_propagates_through_min_even_though_duckdb_orders_it_last(tmp_path):
    ent, view = agg_view("v", HOUR_US, [HOUR_US], False, ("min", "max", "var", "mean"))
    store = _store(tmp_path, view, ent, [[_row(10, x=1.0), _row(20, x=math.nan), _row(30, x=-4.0), _row(40, x=2.0)]])
    got = store.get_historical_features(pd.DataFrame({"k": [1, 1, 1], "event_timestamp": [at(10), at(20), at(50)]}),
                                        ["v:x_min_1h", "v:x_max_1h", "v:x_var_1h", "v:x_mean_1h"]).to_pandas()
    assert got["x_min_1h"].iloc[0] == 1.0 and math.isnan(got["x_min_1h"].iloc[1])
    assert all(math.isnan(got[c].iloc[2]) for c in ("x_min_1h", "x_max_1h", "x_var_1h", "x_mean_1h"))
    assert got["x_var_1h"].isna().iloc[0]  # one value: null (n < 2)


def test_available_sees_only_the_versions_created_by_t(tmp_path):
    ent, view = agg_view("v", HOUR_US, [2 * HOUR_US], True, ("sum", "count"))
    # event 1 at 10 min, corrected at 50 min (moved to 30 min, amount 5 -> 7); event 2 created late at 2 h
    store = _store(tmp_path, view, ent, [[_row(600_000_000, x=5.0, eid=1), _row(7_200_000_000 - 1, 7_200_000_000,
                                                                                 x=1.0, eid=2)],
                                         [_row(1_800_000_000, 3_000_000_000, x=7.0, eid=1)]])
    ents = pd.DataFrame({"k": [1, 1, 1], "event_timestamp": [at(2_400_000_000), at(3_000_000_000), at(7_200_000_000)]})
    refs = ["v:x_sum_2h", "v:x_count_2h"]
    avail = store.get_historical_features(ents, refs, point_in_time="available").to_pandas()
    event = store.get_historical_features(ents, refs).to_pandas()
    assert avail["x_sum_2h"].tolist() == [5.0, 7.0, 8.0]
    assert event["x_sum_2h"].tolist() == [7.0, 7.0, 8.0]  # every version visible: the correction from the start
    assert avail["x_count_2h"].tolist() == [1, 1, 2]


def test_events_marks_each_version_with_its_successors_created_time():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE h AS SELECT * FROM (VALUES (1, 7, TIMESTAMPTZ '2024-01-01 00:00:00', 0, 0), "
                "(1, 7, TIMESTAMPTZ '2024-01-01 01:00:00', 1, 0), (1, 7, TIMESTAMPTZ '2024-01-01 01:00:00', 1, 1), "
                "(1, NULL, TIMESTAMPTZ '2024-01-01 00:00:00', 0, 1)) "
                "t(k, eid, created_timestamp, _skewless_batch, _skewless_row)")
    rows = con.execute(f"SELECT _skewless_batch, _skewless_row, {SUPERSEDED} FROM "
                       f"{events('h', ('k',), 'eid', 'available')} ORDER BY 1, 2").fetchall()
    one = 1_704_070_800_000_000  # 2024-01-01 01:00 in epoch microseconds
    assert rows == [(0, 0, one), (0, 1, None), (1, 0, one), (1, 1, None)]


def test_streamed_and_in_memory_results_agree_with_plain_views_and_parquet_entities(tmp_path):
    ent, view = agg_view("v", HOUR_US, [HOUR_US, 3 * HOUR_US], False, ("count", "sum", "last_k(2)"))
    store = _store(tmp_path, view, ent, [[_row(i * 600_000_000, x=float(i), k=i % 3) for i in range(40)]])
    plain = sk.FeatureView("p", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("y", sk.Float64)])
    store.apply([ent, plain])
    store.ingest("p", pd.DataFrame({"k": [0, 1, 2], "event_timestamp": [at(0)] * 3, "created_timestamp": [at(0)] * 3,
                                    "y": [0.5, 1.5, 2.5]}))
    folder = tmp_path / "entities"
    folder.mkdir()
    for f in range(2):  # two files: the input position is (file, row)
        pq.write_table(pa.table({"k": [0, 1, 2, 1], "event_timestamp": pa.array(
            [at(HOUR_US * (f + 2) + 7)] * 4, pa.timestamp("us", tz="UTC")), "id": [f * 10 + i for i in range(4)]}),
            folder / f"part{f}.parquet")
    refs = ["v:x_count_1h", "p:y", "v:x_sum_3h", "v:x_last_2_3h"]
    job = store.get_historical_features(str(folder), refs, full_feature_names=True)
    arrow = job.to_arrow()
    assert arrow.column("id").to_pylist() == [0, 1, 2, 3, 10, 11, 12, 13]
    assert job.to_reader().read_all().equals(arrow)
    out = job.to_parquet(tmp_path / "train.parquet")
    assert pq.read_table(out).equals(arrow)
    assert arrow.column("p__y").to_pylist() == [0.5, 1.5, 2.5, 1.5] * 2
    assert arrow.column("v__x_count_1h").to_pylist()[:4] == [2, 2, 2, 2]


def test_an_output_name_colliding_with_an_input_column_is_an_error(tmp_path):
    ent, view = agg_view("v", HOUR_US, [HOUR_US], False, ("count",))
    store = _store(tmp_path, view, ent, [[_row(1, x=1.0)]])
    with pytest.raises(ValidationError, match="x_count_1h"):
        store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [at(1)], "x_count_1h": [0]}),
                                      ["v:x_count_1h"])


def test_int32_and_float32_and_timestamp_columns_keep_their_types(tmp_path):
    ent = sk.Entity("ent", join_keys=["k"])
    w = timedelta(hours=1)
    view = AggregatedView("t", [ent], [sk.Field("k", sk.Int64), sk.Field("i", sk.Int32), sk.Field("f", sk.Float32),
                                       sk.Field("ts", sk.UnixTimestamp)],
                          [Aggregation("i", "sum", w), Aggregation("i", "max", w), Aggregation("f", "min", w),
                           Aggregation("ts", "last", w), Aggregation("ts", "last_k(2)", w)], timedelta(hours=1),
                          online=False)
    store = sk.init_repo(tmp_path / "repo")
    store.apply([ent, view])
    store.ingest("t", pa.table({"k": [1, 1], "event_timestamp": pa.array([at(1), at(2)], pa.timestamp("us", tz="UTC")),
                                "i": pa.array([2 ** 31 - 1, 5], pa.int32()), "f": pa.array([1.5, -2.5], pa.float32()),
                                "ts": pa.array([at(100), at(50)], pa.timestamp("us", tz="UTC"))}))
    got = store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [at(5)]}),
                                        [f"t:{a.name}" for a in view.aggregations]).to_arrow()
    assert got.column("i_sum_1h").to_pylist() == [2 ** 31 + 4]  # no Int32 overflow: sums are Int64
    assert got.schema.field("i_sum_1h").type == pa.int64() and got.schema.field("i_max_1h").type == pa.int32()
    assert got.schema.field("f_min_1h").type == pa.float32() and got.column("f_min_1h").to_pylist() == [-2.5]
    assert got.column("ts_last_1h").to_pylist() == [at(50)]
    assert got.column("ts_last_2_1h").to_pylist() == [[at(50), at(100)]]


def test_event_timestamps_are_returned_for_plain_views_only(tmp_path):
    ent, view = agg_view("v", HOUR_US, [HOUR_US], False, ("count",))
    store = _store(tmp_path, view, ent, [[_row(5, x=1.0)]])
    plain = sk.FeatureView("p", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("y", sk.Float64)])
    store.apply([ent, plain])
    store.ingest("p", pd.DataFrame({"k": [1], "event_timestamp": [at(3)], "created_timestamp": [at(3)], "y": [2.0]}))
    got = store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [at(10)]}),
                                        ["v:x_count_1h", "p:y"], include_event_timestamps=True).to_arrow()
    # an aggregation has no single winning row, so no event time of its own
    assert got.column_names == ["k", "event_timestamp", "x_count_1h", "y", "p__event_timestamp"]
    assert got.column("p__event_timestamp").to_pylist() == [at(3)] and got.column("x_count_1h").to_pylist() == [1]
