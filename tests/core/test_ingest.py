from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

import skewless as sk
from skewless.errors import ValidationError

UTC = timezone.utc
T = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(repo):
    e = sk.Entity("driver", join_keys=["driver_id"])
    repo.apply([e, sk.FeatureView("stats", entities=[e], schema=[
        sk.Field("driver_id", sk.Int64), sk.Field("rate", sk.Float64), sk.Field("trips", sk.Int32),
        sk.Field("city", sk.String)])])
    return repo


def good(n=3, **over):
    d = {"driver_id": list(range(n)), "event_timestamp": [T] * n, "rate": [0.5] * n, "trips": [1] * n,
         "city": ["x"] * n}
    d.update(over)
    return pd.DataFrame(d)


def assert_nothing_written(store):
    assert store.offline.version("stats") is None
    assert store.get_online_features(["stats:rate"], [{"driver_id": 0}]).statuses["rate"] == ["NOT_FOUND"]


@pytest.mark.parametrize("df, column, row, match", [
    (good().drop(columns=["rate"]), "rate", None, "missing columns"),
    (good().drop(columns=["event_timestamp"]), "event_timestamp", None, "missing columns"),
    (good(driver_id=[1, None, None]), "driver_id", 1, "null at row 1"),
    (good(event_timestamp=[T, T, None]), "event_timestamp", 2, "missing timestamp at row 2"),
    (good(event_timestamp=["2024-01-01", "yesterday-ish", "2024-01-02"]), "event_timestamp", 1, "unparseable"),
    (good(rate=["a", "b", "c"]), "rate", 0, "does not match declared Float64"),
    (good(trips=[1, 2**40, 3]), "trips", 1, "row 1 does not fit Int32"),
    (good(city=[1, "x", 2.5]), "city", 1, "mixed"),
    (good(event_timestamp=[1, 2, 3]), "event_timestamp", 0, "epoch numbers are ambiguous"),
])
def test_bad_input_names_column_and_first_bad_row_and_writes_nothing(store, df, column, row, match):
    with pytest.raises(ValidationError, match=match) as info:
        store.ingest("stats", df)
    assert info.value.column == column
    if row is not None:
        assert info.value.row == row
    assert_nothing_written(store)


def test_unknown_view_and_empty_data(store):
    with pytest.raises(sk.NotFoundError):
        store.ingest("nope", good())
    with pytest.raises(ValidationError, match="no rows"):
        store.ingest("stats", good(0))
    with pytest.raises(ValidationError, match="DataFrame"):
        store.ingest("stats", [{"driver_id": 1}])


def test_pyarrow_input_naive_and_aware_timestamps_and_created_default(store):
    naive = pa.table({"driver_id": [1], "event_timestamp": pa.array([datetime(2024, 1, 1, 10)], pa.timestamp("ns")),
                      "rate": [1.0], "trips": pa.array([3], pa.int64()), "city": ["a"]})
    before = datetime.now(UTC)
    store.ingest("stats", naive)
    aware = good(1, driver_id=[2], event_timestamp=[pd.Timestamp("2024-01-01 12:00", tz="Europe/Berlin")])
    store.ingest("stats", aware)
    ents = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [datetime(2024, 1, 1, 10, tzinfo=UTC),
                                                                   datetime(2024, 1, 1, 11, tzinfo=UTC)]})
    got = store.get_historical_features(ents, ["stats:trips"], include_event_timestamps=True).to_pandas()
    assert got["trips"].tolist() == [3, 1]
    assert got["stats__event_timestamp"].tolist() == [pd.Timestamp("2024-01-01 10:00", tz="UTC"),
                                                      pd.Timestamp("2024-01-01 11:00", tz="UTC")]
    hist = store.engine.connect().sql(store.engine.history_relation(
        store.get_feature_view("stats"), store.offline.files("stats", store.offline.version("stats")))).to_arrow_table().to_pandas()
    assert (hist["created_timestamp"] >= pd.Timestamp(before).floor("us")).all()  # absent -> write time


def test_ingest_pushes_newest_row_online(store):
    store.ingest("stats", good(2, driver_id=[7, 7], event_timestamp=[T, T + timedelta(hours=1)], rate=[1.0, 2.0]))
    store.ingest("stats", good(1, driver_id=[7], event_timestamp=[T - timedelta(hours=5)], rate=[9.0]))  # late
    r = store.get_online_features(["stats:rate"], [{"driver_id": 7}])
    assert r.values["rate"] == [2.0] and r.event_timestamps["rate"] == [T + timedelta(hours=1)]


def test_field_mapping_and_source_timestamp_names(repo, tmp_path):
    e = sk.Entity("driver", join_keys=["driver_id"])
    src = sk.ParquetSource(str(tmp_path / "d.parquet"), timestamp_field="ts", created_timestamp_column="created",
                           field_mapping={"conv_rate": "rate"})
    repo.apply([e, sk.FeatureView("m", entities=[e], schema=[sk.Field("driver_id", sk.Int64),
                                                             sk.Field("rate", sk.Float64)], source=src)])
    pd.DataFrame({"driver_id": [1], "ts": [T], "created": [T], "conv_rate": [0.25]}).to_parquet(tmp_path / "d.parquet")
    repo.ingest_source("m")
    got = repo.get_historical_features(pd.DataFrame({"driver_id": [1], "event_timestamp": [T]}), ["m:rate"])
    assert got.to_pandas()["rate"].tolist() == [0.25]


def test_row_hash_identity_is_pinned_across_versions():
    """A batch's identity (the hash of its rows) is what earlier versions computed for the same rows: a rerun after
    an upgrade must still find a batch committed before it. Pinned for columns with and without nulls, numbers of two
    widths, times (created times filled in with the write time hash as null), text and booleans, whole and sliced
    (the hash reads null-free number columns straight from their buffers, and the others through a copy)."""
    from skewless.ingest import identity

    wt, t0, ts, n = datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2024, 1, 1, tzinfo=timezone.utc), \
        pa.timestamp("us", tz="UTC"), 300
    table = pa.table({
        "k": pa.array(range(n), pa.int64()),
        "event_timestamp": pa.array([t0 + timedelta(seconds=i) for i in range(n)], ts),
        "created_timestamp": pa.array([wt if i % 2 else t0 for i in range(n)], ts),
        "_skewless_batch": pa.array([7] * n, pa.int64()),
        "_skewless_row": pa.array(range(n), pa.int64()),
        "x": pa.array([None if i % 7 == 0 else i * 0.25 for i in range(n)], pa.float64()),
        "n": pa.array([i * 3 for i in range(n)], pa.int32()),
        "s": pa.array([f"v{i}" for i in range(n)], pa.string()),
        "b": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
    })
    assert identity(table, wt, None) == "sha256:1819827a29ccdd38f79372fc71ebf66dd2d256f2c7dd7c64d6a27c55fa3083d1"
    assert identity(table.slice(5, 200), wt, None) == \
        "sha256:22119c6bb53b87e1a00a85159e811782a90f200161ea8b638b291144305d4a8e"


@pytest.mark.parametrize("t", [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
                               datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-7))),
                               datetime(2026, 1, 2, 3, 4, 5, 678901), datetime(1600, 1, 1, tzinfo=timezone.utc)])
def test_the_write_time_column_is_arrows_reading_of_the_write_time(t):
    """(Made from the instant's integer, not Arrow's scalar of the datetime: the same values.)"""
    from skewless import ingest

    assert ingest._repeat_time(t, 3).equals(pa.repeat(pa.scalar(t, pa.timestamp("us", tz="UTC")), 3))
    assert ingest._row_numbers(5).to_pylist() == [0, 1, 2, 3, 4] == ingest._row_numbers(5).to_pylist()
    assert ingest._row_numbers(5000).to_pylist() == list(range(5000))
