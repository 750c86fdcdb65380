"""Windowed aggregations in training sets (transformations.md section 1), for every offline store + engine pair.

``OfflineConformance`` inherits these cases, so every engine subclass runs them; expected values come from the
brute-force spec oracle (``tests/support/agg_oracle.py``). An engine that does not compute aggregations
(``supports_aggregations = False``) must refuse them with a typed EngineError instead of answering wrong.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skewless as sk
from skewless.aggregation import AggregatedView, Aggregation
from skewless.errors import EngineError, ValidationError
from tests.support import agg_oracle, oracle

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
FUNCTIONS = ("count", "sum", "mean", "min", "max", "var", "stddev", "last", "last_k(2)")
SCHEMA = pa.schema([("k", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                    ("created_timestamp", pa.timestamp("us", tz="UTC")), ("x", pa.float64()), ("n", pa.int64()),
                    ("s", pa.string()), ("eid", pa.int64())])
_names = itertools.count()


def at(us: int) -> datetime:
    return T0 + timedelta(microseconds=us)


def agg_view(name: str, hop_us: int, windows_us: list[int], event_id: bool, functions=FUNCTIONS):
    """A view with every function over x (Float64), sum/min/last over n (Int64) and min/max/last over s."""
    ent = sk.Entity("ent", join_keys=["k"])
    aggs = []
    for w in windows_us:
        wd = timedelta(microseconds=w)
        aggs += [Aggregation("x", f, wd) for f in functions]
        aggs += [Aggregation("n", f, wd) for f in ("sum", "min", "last", "last_k(3)")]
        aggs += [Aggregation("s", f, wd) for f in ("min", "max", "last")]
        aggs.append(Aggregation(None, "count(*)", wd))
    schema = [sk.Field("k", sk.Int64), sk.Field("x", sk.Float64), sk.Field("n", sk.Int64), sk.Field("s", sk.String),
              sk.Field("eid", sk.Int64)]
    view = AggregatedView(name, [ent], schema, aggs, timedelta(microseconds=hop_us),
                          event_id="eid" if event_id else None, online=False)
    return ent, view


def oracle_rows(batches) -> list:
    return [oracle.Row((r["k"],), r["event_timestamp"], r["created_timestamp"], (b, i),
                       {c: r[c] for c in ("x", "n", "s", "eid")})
            for b, rows in enumerate(batches) for i, r in enumerate(rows)]


def compare(got: pa.Table, want: list[dict], view, entity_rows, names) -> None:
    got_rows = got.to_pylist()
    assert len(got_rows) == len(want)
    for i, (g, w) in enumerate(zip(got_rows, want)):
        for c in entity_rows[i]:
            assert g[c] == entity_rows[i][c], f"row {i}: input column {c} changed"
        for a in view.aggregations:
            assert agg_oracle.same_value(g[names[a.name]], w[a.name]), (
                f"row {i} {a.name}: got {g[names[a.name]]!r}, want {w[a.name]!r} (entity {entity_rows[i]})")


# -- random histories --------------------------------------------------------------------------------------------
_value_x = st.one_of(st.none(), st.just(math.nan), st.integers(-20, 20).map(lambda v: v / 2))
_row = st.fixed_dictionaries({
    "k": st.integers(1, 3),
    # whole minutes, on and around hop boundaries, incl. rows far before and after every entity time
    "ev": st.one_of(st.integers(-60, 600).map(lambda m: m * 60_000_000),
                    st.tuples(st.integers(-1, 10), st.sampled_from([-1, 0, 1])).map(lambda p: p[0] * HOUR_US + p[1])),
    "late": st.sampled_from([0, 0, 1, 30 * 60_000_000, 5 * HOUR_US, -1]),  # created - event: late, or before
    "x": _value_x, "n": st.one_of(st.none(), st.integers(-1000, 1000)),
    "s": st.one_of(st.none(), st.sampled_from(["a", "b", "zz", ""])),
    "eid": st.one_of(st.none(), st.integers(1, 4)),
})


def _to_rows(raw) -> list[dict]:
    return [{"k": r["k"], "event_timestamp": at(r["ev"]), "created_timestamp": at(r["ev"] + r["late"]),
             "x": r["x"], "n": r["n"], "s": r["s"], "eid": r["eid"]} for r in raw]


histories = st.lists(st.lists(_row, min_size=0, max_size=12), min_size=1, max_size=3)
entity_times = st.lists(st.tuples(st.integers(1, 4), st.one_of(
    st.integers(-1, 11).map(lambda h: h * HOUR_US),  # on a boundary
    st.integers(-60, 660).map(lambda m: m * 60_000_000 + 7))), min_size=1, max_size=8)  # off it
shapes = st.sampled_from([(HOUR_US, [HOUR_US, 3 * HOUR_US]), (HOUR_US // 2, [HOUR_US // 2, 2 * HOUR_US]),
                          (2 * HOUR_US, [2 * HOUR_US, 6 * HOUR_US]), (HOUR_US, [4 * HOUR_US])])


class AggregationConformance:
    def _agg_store(self, store, view, ent, batches):
        store.apply([ent, view])
        if not self._supported(store):
            return store  # it must refuse before reading any history (``_refused``)
        for b, rows in enumerate(batches):
            if rows:  # each its own batch identity: equal batches are two writes here, not a replay of one
                store.ingest(view.name, pa.Table.from_pylist(rows, schema=SCHEMA), batch_id=f"{view.name}-{b}")
        return store

    def _supported(self, store) -> bool:
        return getattr(store.engine, "supports_aggregations", False)

    def _refused(self, store, entity_rows, refs) -> bool:
        """An engine without aggregations refuses them with a typed error (True); else False: it must compute."""
        if self._supported(store):
            return False
        with pytest.raises(EngineError, match="aggregat"):
            store.get_historical_features(pd.DataFrame(entity_rows), refs).to_arrow()
        return True

    # differing_executors: every engine's conformance class inherits this one test, so one worker process runs it
    # from several classes; each run draws its own examples against its own engine and shares nothing between them.
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow,
                                                                    HealthCheck.differing_executors])
    @given(raw=histories, ents=entity_times, shape=shapes, event_id=st.booleans(),
           point_in_time=st.sampled_from(["event", "available"]))
    def test_aggregations_match_the_oracle(self, feature_store, raw, ents, shape, event_id, point_in_time):
        hop, windows = shape
        ent, view = agg_view(f"agg{next(_names)}", hop, windows, event_id)
        batches = [_to_rows(b) for b in raw]
        entity_rows = [{"k": k, "event_timestamp": at(t), "label": i} for i, (k, t) in enumerate(ents)]
        self._agg_store(feature_store, view, ent, batches)
        refs = [f"{view.name}:{a.name}" for a in view.aggregations]
        if self._refused(feature_store, pd.DataFrame(entity_rows), refs):
            return
        got = feature_store.get_historical_features(pd.DataFrame(entity_rows), refs,
                                                    point_in_time=point_in_time).to_arrow()
        aggs = [agg_oracle.Agg(a.name, a.column, a.function, a.window, a.k) for a in view.aggregations]
        want = agg_oracle.training_set(oracle_rows(batches), ["k"], aggs, timedelta(microseconds=hop), entity_rows,
                                       point_in_time=point_in_time, event_id="eid" if event_id else None)
        compare(got, want, view, entity_rows, {a.name: a.name for a in view.aggregations})

    def test_aggregations_mixed_with_plain_views_keep_every_row_in_order(self, feature_store):
        ent, view = agg_view(f"agg{next(_names)}", HOUR_US, [HOUR_US, 24 * HOUR_US], True, ("count", "sum", "last"))
        plain = sk.FeatureView("plain", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("p", sk.Float64)])
        rows = [{"k": 1, "event_timestamp": at(h * HOUR_US + 5), "created_timestamp": at(h * HOUR_US + 5),
                 "x": float(h), "n": h, "s": str(h), "eid": h} for h in range(30)]
        self._agg_store(feature_store, view, ent, [rows])
        feature_store.apply([ent, plain])
        feature_store.ingest("plain", pd.DataFrame({"k": [1, 2], "event_timestamp": [T0, T0],
                                                    "created_timestamp": [T0, T0], "p": [1.5, 2.5]}))
        entity_rows = [{"k": k, "event_timestamp": at(h * HOUR_US), "label": i}
                       for i, (k, h) in enumerate([(1, 29), (2, 3), (1, 29), (None, 5), (1, -3), (1, 12)])]
        refs = [f"{view.name}:x_sum_1d", "plain:p", f"{view.name}:count_1h", f"{view.name}:x_last_1h"]
        if self._refused(feature_store, pd.DataFrame(entity_rows), refs):
            return
        job = feature_store.get_historical_features(pd.DataFrame(entity_rows), refs, full_feature_names=True)
        got = job.to_arrow()
        v = view.name
        # features grouped by view in order of first appearance, as for plain views (features.resolve)
        assert got.column_names == ["k", "event_timestamp", "label", f"{v}__x_sum_1d", f"{v}__count_1h",
                                    f"{v}__x_last_1h", "plain__p"]
        assert got.column("label").to_pylist() == list(range(6))
        assert got.schema.field(f"{v}__count_1h").type == pa.int64()
        aggs = [agg_oracle.Agg(a.name, a.column, a.function, a.window, a.k) for a in view.aggregations]
        want = agg_oracle.training_set(oracle_rows([rows]), ["k"], aggs, view.hop, entity_rows, event_id="eid")
        for g, w in zip(got.to_pylist(), want):
            for out in ("x_sum_1d", "count_1h", "x_last_1h"):
                assert agg_oracle.same_value(g[f"{v}__{out}"], w[out]), (out, g, w)
        assert got.column("plain__p").to_pylist() == [1.5, 2.5, 1.5, None, None, 1.5]
        assert got.column(f"{v}__count_1h").to_pylist()[3:5] == [0, 0]  # null key, before every event
        assert got.column(f"{v}__x_sum_1d").to_pylist()[0] == float(sum(range(5, 29)))  # 5h < event <= 29h

    def test_int64_sum_overflow_is_a_typed_error_naming_the_feature(self, feature_store):
        ent, view = agg_view(f"agg{next(_names)}", HOUR_US, [HOUR_US], False, ("count",))
        big = 3 * 2 ** 60
        rows = [{"k": 1, "event_timestamp": at(i), "created_timestamp": at(i), "x": 1.0, "n": big, "s": "a",
                 "eid": None} for i in range(1, 4)]
        self._agg_store(feature_store, view, ent, [rows])
        ents = pd.DataFrame({"k": [1], "event_timestamp": [at(10)]})
        if self._refused(feature_store, ents, [f"{view.name}:n_sum_1h"]):
            return
        with pytest.raises(ValidationError, match=f"{view.name}.*n_sum_1h.*Int64"):
            feature_store.get_historical_features(ents, [f"{view.name}:n_sum_1h"]).to_arrow()
        # two of them fit: exact, no float rounding on the way
        ok = feature_store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [at(2)]}),
                                                   [f"{view.name}:n_sum_1h"]).to_arrow()
        assert ok.column("n_sum_1h").to_pylist() == [2 * big] and ok.schema.field("n_sum_1h").type == pa.int64()
