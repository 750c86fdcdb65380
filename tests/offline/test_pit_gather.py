"""The narrow point-in-time join: the ASOF join returns each winner's position and offline/gather.py reads the
features by position. Checked against a direct take (the gather alone) and against the wide join, which carries
the features through the join (the streamed path, ``to_reader``), value for value and type for type."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skewless as sk
from skewless.errors import EngineError
from skewless.offline import gather as gather_mod
from skewless.offline.gather import FILE_SHIFT, PositionGather

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)

TYPES = {
    "i32": pa.int32(), "i64": pa.int64(), "f32": pa.float32(), "f64": pa.float64(), "s": pa.string(),
    "b": pa.bool_(), "raw": pa.binary(), "ts": pa.timestamp("us", tz="UTC"),
}


def _value(rnd: random.Random, name: str, i: int):
    if rnd.random() < 0.2:
        return None
    return {"i32": lambda: rnd.randint(-2**31, 2**31 - 1), "i64": lambda: rnd.randint(-2**63, 2**63 - 1),
            "f32": lambda: float(np.float32(rnd.uniform(-1e6, 1e6))), "f64": lambda: rnd.uniform(-1e9, 1e9),
            "s": lambda: f"v{i}-" + "x" * rnd.randint(0, 5), "b": lambda: rnd.random() < 0.5,
            "raw": lambda: bytes([i % 256]) * rnd.randint(0, 3),
            "ts": lambda: T0 + timedelta(microseconds=rnd.randint(-10**12, 10**12))}[name]()


def _files(tmp_path, rnd, sizes, row_group_size):
    tables = []
    for f, n in enumerate(sizes):
        t = pa.table({c: pa.array([_value(rnd, c, f * 1000 + i) for i in range(n)], t) for c, t in TYPES.items()})
        pq.write_table(t, tmp_path / f"part-{f}.parquet", row_group_size=row_group_size)
        tables.append(t)
    return [str(tmp_path / f"part-{f}.parquet") for f in range(len(sizes))], tables


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 60), min_size=1, max_size=4),
       row_group_size=st.integers(1, 25), batch_rows=st.integers(1, 40), n=st.integers(0, 80),
       null_frac=st.sampled_from([0.0, 0.3, 1.0]), permute=st.booleans())
def test_gather_equals_a_direct_take(tmp_path_factory, seed, sizes, row_group_size, batch_rows, n, null_frac, permute):
    rnd = random.Random(seed)
    uris, tables = _files(tmp_path_factory.mktemp("g"), rnd, sizes, row_group_size)
    rows = [(f, r) for f, size in enumerate(sizes) for r in range(size)]
    picks = [None if not rows or rnd.random() < null_frac else rnd.choice(rows) for _ in range(n)]
    positions = pa.array([None if p is None else (p[0] << FILE_SHIFT) + p[1] for p in picks], pa.int64())
    into = np.array(rnd.sample(range(n), n), dtype=np.int64) if permute else None
    old = gather_mod._BATCH_ROWS
    gather_mod._BATCH_ROWS = batch_rows  # several decode steps per row group, and steps ending between winners
    try:
        got = PositionGather(tuple(uris), tuple(TYPES), tuple(f"out_{c}" for c in TYPES),
                             tuple(TYPES.values())).take(positions, into)
    finally:
        gather_mod._BATCH_ROWS = old
    for column, (name, type_) in zip(got, TYPES.items()):
        assert column.type == type_ and len(column) == n
        want = [None] * n
        for i, p in enumerate(picks):
            want[i if into is None else into[i]] = None if p is None else tables[p[0]].column(name)[p[1]].as_py()
        assert column.to_pylist() == want, name


def test_a_file_shorter_than_the_join_found_is_an_engine_error(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0]}), tmp_path / "a.parquet")
    g = PositionGather((str(tmp_path / "a.parquet"),), ("x",), ("x",), (pa.float64(),))
    assert g.take(pa.array([1], pa.int64())).pop().to_pylist() == [2.0]
    with pytest.raises(EngineError, match="fewer than"):
        g.take(pa.array([5], pa.int64()))


# -- through the store ----------------------------------------------------------------------------------------

DTYPES = {"i32": sk.Int32, "i64": sk.Int64, "f32": sk.Float32, "f64": sk.Float64, "s": sk.String, "b": sk.Bool,
          "raw": sk.Bytes, "ts": sk.UnixTimestamp}


def _store(tmp_path, ttl=timedelta(hours=5)):
    store = sk.init_repo(tmp_path / "repo", project="gather")
    ent = sk.Entity("ent", join_keys=["k"])
    view = sk.FeatureView("v", entities=[ent], ttl=ttl,
                          schema=[sk.Field("k", sk.Int64)] + [sk.Field(c, d) for c, d in DTYPES.items()])
    store.apply([ent, view])
    return store


def _ingest(store, rnd, batches=3, rows=60, keys=8, extra=False):
    for b in range(batches):
        data = {"k": [rnd.randint(1, keys) for _ in range(rows)],
                "event_timestamp": [T0 + timedelta(hours=rnd.randint(0, 30)) for _ in range(rows)],
                "created_timestamp": [T0 + timedelta(hours=rnd.randint(0, 40)) for _ in range(rows)]}
        data.update({c: pa.array([_value(rnd, c, b * 100 + i) for i in range(rows)], TYPES[c]) for c in DTYPES})
        if extra:
            data["extra"] = [rnd.random() for _ in range(rows)]
        store.ingest("v", pa.table(data))


def _entities(rnd, n=300, keys=10):
    return pd.DataFrame({"k": [rnd.randint(0, keys) for _ in range(n)],
                         "event_timestamp": [T0 + timedelta(minutes=rnd.randint(-60, 40 * 60)) for _ in range(n)],
                         "row": range(n)})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_dtype_reads_the_same_by_position_as_through_the_join(tmp_path, seed):
    rnd = random.Random(seed)
    store = _store(tmp_path)
    _ingest(store, rnd)
    refs = [f"v:{c}" for c in DTYPES]
    job = store.get_historical_features(_entities(rnd), refs, include_event_timestamps=True)
    assert [g is not None for g in job._plan.gathers] == [True]  # the narrow form was used
    narrow = job.to_arrow()
    wide = job.to_reader(50).read_all()  # the full query: the join carries the features
    assert narrow.schema == wide.schema
    assert narrow.equals(wide)
    assert narrow.column("f64").null_count < narrow.num_rows  # not vacuous: values were found ...
    assert narrow.column("f64").null_count > 0  # ... and misses, expiries or null values too


def test_entity_rows_from_several_files_come_back_in_input_order(tmp_path):
    rnd = random.Random(5)
    store = _store(tmp_path, ttl=None)
    _ingest(store, rnd)
    ents = _entities(rnd, n=500)
    folder = tmp_path / "ents"
    folder.mkdir()
    for i in range(3):  # input positions are then (file, row) pairs, not 0..n-1
        ents.iloc[i * 200:(i + 1) * 200].to_parquet(folder / f"e{i}.parquet")
    job = store.get_historical_features(str(folder), [f"v:{c}" for c in DTYPES])
    got = job.to_arrow()
    assert got.column("row").to_pylist() == list(range(500))
    assert got.equals(job.to_reader(64).read_all())


def test_a_grown_schema_falls_back_to_the_wide_join(tmp_path):
    rnd = random.Random(9)
    store = _store(tmp_path)
    _ingest(store, rnd, batches=1)
    ent = sk.Entity("ent", join_keys=["k"])
    grown = sk.FeatureView("v", entities=[ent], ttl=timedelta(hours=5),
                           schema=[sk.Field("k", sk.Int64)] + [sk.Field(c, d) for c, d in DTYPES.items()]
                           + [sk.Field("extra", sk.Float64)])
    store.apply([ent, grown])
    _ingest(store, rnd, batches=1, extra=True)  # older files lack `extra`: scans union by name
    job = store.get_historical_features(_entities(rnd), ["v:f64", "v:extra"])
    assert job._plan.gathers == (None,)
    got = job.to_arrow()
    assert got.equals(job.to_reader(50).read_all())
    assert got.column("f64").null_count < got.num_rows
