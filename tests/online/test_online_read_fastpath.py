"""The online read's per-call fast paths (cached resolution and read plan, key normalisers specialised by join-key
dtype, one-pass column building) keep the semantics of the plain path: checked against the spec oracle and against
a per-value reference normaliser, and for the edge cases each fast path has its own branch for."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import skewless as sk
from tests.support.oracle import EXPIRED, NOT_FOUND, PRESENT, Row, online_read as oracle_online_read
from skewless import online_read
from skewless.errors import ValidationError
from skewless.online.base import OnlineStore, to_us

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVERS = range(1, 7)
CITIES = ["ams", "ber"]


def _defs(ttl_a=timedelta(hours=1)):
    driver = sk.Entity("driver", join_keys=["driver_id"], dtype=sk.Int64)
    city = sk.Entity("city", join_keys=["city"], dtype=sk.String)
    user = sk.Entity("user", join_keys=["user"], dtype=sk.String)
    return [driver, city, user,
            sk.FeatureView("a", entities=[driver], schema=[sk.Field("a1", sk.Float64), sk.Field("a2", sk.String)],
                           ttl=ttl_a),
            sk.FeatureView("b", entities=[driver], schema=[sk.Field("b1", sk.Int64), sk.Field("a2", sk.String)]),
            sk.FeatureView("c", entities=[driver, city], schema=[sk.Field("c1", sk.Float64)],
                           ttl=timedelta(hours=3)),
            sk.FeatureView("u", entities=[user], schema=[sk.Field("u1", sk.Float64)])]


JOIN_KEYS = {"a": ["driver_id"], "b": ["driver_id"], "c": ["driver_id", "city"], "u": ["user"]}
TTLS = {"a": timedelta(hours=1), "b": None, "c": timedelta(hours=3), "u": None}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A repo with four views (one-int-key x2, composite, one-string-key), random histories, and the oracle's rows."""
    store = sk.init_repo(tmp_path_factory.mktemp("fast") / "repo", project="test")
    store.apply(_defs())
    rnd = random.Random(7)
    rows: dict[str, list[Row]] = {v: [] for v in JOIN_KEYS}
    order = 0
    for view, keys in JOIN_KEYS.items():
        entities = ([(d,) for d in DRIVERS] if keys == ["driver_id"] else
                    [(d, c) for d in DRIVERS for c in CITIES] if view == "c" else [(f"u{i}",) for i in range(4)])
        data: dict[str, list] = {k: [] for k in keys + ["event_timestamp"]}
        feats = {"a": ["a1", "a2"], "b": ["b1", "a2"], "c": ["c1"], "u": ["u1"]}[view]
        data.update({f: [] for f in feats})
        for key in entities[:-1]:  # the last entity is never written: NOT_FOUND
            # distinct event times per entity, so the newest row is the winner whatever the write order
            for minutes in rnd.sample(range(0, 600, 7), rnd.randint(1, 3)):
                ts = T0 + timedelta(minutes=minutes, microseconds=rnd.randint(0, 999_999))
                vals = {"a1": rnd.random(), "a2": f"s{rnd.randint(0, 99)}", "b1": rnd.randint(-5, 5),
                        "c1": rnd.random(), "u1": rnd.random()}
                vals = {f: vals[f] for f in feats}
                for k, v in zip(keys, key):
                    data[k].append(v)
                data["event_timestamp"].append(ts)
                for f in feats:
                    data[f].append(vals[f])
                order += 1
                rows[view].append(Row(key, ts, ts, (order,), vals))
        store.ingest(view, pd.DataFrame(data))
    views = {v: (JOIN_KEYS[v], TTLS[v], rows[v]) for v in JOIN_KEYS}
    return store, views


def _newest(views) -> datetime:
    return max(r.event_ts for _, _, rows in views.values() for r in rows)


def _check(resp, want):
    assert resp.values == want["values"]
    assert resp.statuses == want["statuses"]
    assert resp.event_timestamps == want["event_timestamps"]


FEATURES = ["a:a1", "b:b1", "c:c1", "u:u1", "a:a2", "b:a2"]


@pytest.mark.parametrize("n_rows", [0, 1, 2, 40])
@pytest.mark.parametrize("hours_after", [0, 2, 5])  # now at or after every write: more of views a and c expired
def test_reads_match_the_oracle(world, n_rows, hours_after):
    store, views = world
    now = _newest(views) + timedelta(hours=hours_after)
    rnd = random.Random(n_rows * 10 + hours_after)
    rows = [{"driver_id": rnd.choice(DRIVERS), "city": rnd.choice(CITIES), "user": f"u{rnd.randint(0, 3)}"}
            for _ in range(n_rows)]
    got = store.get_online_features(FEATURES, rows, now=now, full_feature_names=True)
    _check(got, oracle_online_read(views, rows, FEATURES, now, full_feature_names=True))
    assert got.entity_rows == rows
    statuses = {s for col in got.statuses.values() for s in col}
    if n_rows == 40:  # the random rows do exercise every status
        assert statuses == {PRESENT, NOT_FOUND, EXPIRED}
    # the same call again goes through the cached resolution and plan: same answer
    _check(store.get_online_features(FEATURES, rows, now=now, full_feature_names=True),
           oracle_online_read(views, rows, FEATURES, now, full_feature_names=True))


def test_short_names_and_the_feature_service_path(world):
    store, views = world
    now = _newest(views)
    rows = [{"driver_id": d, "city": "ams", "user": "u1"} for d in DRIVERS]
    feats = ["a:a1", "c:c1", "u:u1"]
    _check(store.get_online_features(feats, rows, now=now), oracle_online_read(views, rows, feats, now))
    service = sk.FeatureService("svc", features=[store.get_feature_view(v)[[f]] for v, f in (r.split(":") for r in feats)])
    _check(store.get_online_features(service, rows, now=now),
           oracle_online_read(views, rows, feats, now))
    with pytest.raises(ValidationError, match="'a2' appears in two views"):
        store.get_online_features(["a:a2", "b:a2"], rows, now=now)
    assert list(store.get_online_features(["a:a2", "b:a2"], rows, now=now, full_feature_names=True).values) \
        == ["a__a2", "b__a2"]


def test_now_given_naive_or_in_another_zone_is_the_same_instant(world):
    store, views = world
    now = max(r.event_ts for r in views["a"][2]) + timedelta(minutes=30)  # a's TTL is 1h
    rows = [{"driver_id": d} for d in DRIVERS]
    want = store.get_online_features(["a:a1"], rows, now=now).statuses
    assert EXPIRED in want["a1"] and PRESENT in want["a1"]
    for same in (now.replace(tzinfo=None), now.astimezone(timezone(timedelta(hours=-5))), pd.Timestamp(now),
                 now.isoformat()):
        assert store.get_online_features(["a:a1"], rows, now=same).statuses == want


def test_entity_rows_may_be_an_iterator(world):
    store, views = world
    now = _newest(views)
    rows = [{"driver_id": d, "city": "ber"} for d in DRIVERS]
    got = store.get_online_features(["a:a1", "c:c1"], iter(rows), now=now)
    _check(got, oracle_online_read(views, rows, ["a:a1", "c:c1"], now))
    assert got.entity_rows == rows


# -- key normalisation --------------------------------------------------------------------------------------------
def _reference_keys(view, rows):
    """The plain rule, value by value: ``_norm`` of every join key of every row."""
    return [tuple(online_read._norm(r[k], dt, k, i) for k, dt in view.join_key_dtypes.items())
            for i, r in enumerate(rows)]


@pytest.mark.parametrize("values", [
    [3, 3.0, np.int64(4), np.int32(5), True, False, "6", None, math.nan, pd.NA, pd.NaT, np.float64(2.0)],
    [1, 2, 3],
    [None],
])
def test_int_key_fast_path_equals_the_reference(world, values):
    store, _ = world
    view = store.get_feature_view("a")
    rows = [{"driver_id": v} for v in values]
    got = online_read.entity_keys(view, rows)
    assert got == _reference_keys(view, rows)
    assert all(type(k[0]) in (int, type(None)) for k in got)  # numpy ints and bools become Python ints


def test_int_key_values_read_as_their_int(world):
    store, views = world
    now = _newest(views)
    plain = store.get_online_features(["b:b1"], [{"driver_id": d} for d in (1, 2, 1, 0)], now=now)
    got = store.get_online_features(["b:b1"], [{"driver_id": v} for v in (1.0, np.int64(2), True, False)], now=now)
    assert got.values == plain.values and got.statuses == plain.statuses
    nulls = store.get_online_features(["b:b1"], [{"driver_id": v} for v in (None, math.nan, pd.NA)], now=now)
    assert nulls.values == {"b1": [None] * 3} and nulls.statuses == {"b1": [NOT_FOUND] * 3}


@pytest.mark.parametrize("bad, row", [(3.5, 0), ("x", 1), (math.inf, 2), ([1], 1), (object(), 0)])
def test_bad_int_keys_name_the_row(world, bad, row):
    store, _ = world
    rows = [{"driver_id": 1} for _ in range(3)]
    rows[row] = {"driver_id": bad}
    with pytest.raises(ValidationError, match=rf"entity row {row}: driver_id=.* is not a valid Int64") as exc:
        store.get_online_features(["a:a1"], rows)
    assert exc.value.row == row and exc.value.column == "driver_id"


def test_string_key_fast_path(world):
    store, views = world
    view = store.get_feature_view("u")
    rows = [{"user": v} for v in ("u1", 1, 2.5, None, math.nan, np.str_("u2"), True)]
    assert online_read.entity_keys(view, rows) == _reference_keys(view, rows) \
        == [("u1",), ("1",), ("2.5",), (None,), (None,), ("u2",), ("True",)]
    now = _newest(views)
    got = store.get_online_features(["u:u1"], [{"user": np.str_("u1")}, {"user": "u1"}], now=now)
    assert got.values["u1"][0] == got.values["u1"][1] is not None


def test_composite_keys(world):
    store, views = world
    view = store.get_feature_view("c")
    rows = [{"driver_id": 1, "city": "ams"}, {"driver_id": 2.0, "city": "ber"}, {"driver_id": None, "city": "ams"},
            {"driver_id": 1, "city": None}, {"driver_id": np.int64(3), "city": np.str_("ams")}]
    assert online_read.entity_keys(view, rows) == _reference_keys(view, rows)
    now = _newest(views)
    got = store.get_online_features(["c:c1"], rows, now=now)
    want = oracle_online_read(views, [{"driver_id": 1, "city": "ams"}, {"driver_id": 2, "city": "ber"},
                                      {"driver_id": None, "city": "ams"}, {"driver_id": 1, "city": None},
                                      {"driver_id": 3, "city": "ams"}], ["c:c1"], now)
    _check(got, want)
    with pytest.raises(ValidationError, match="entity row 1 lacks join key 'city' needed by view 'c'"):
        store.get_online_features(["c:c1"], [{"driver_id": 1, "city": "ams"}, {"driver_id": 1}])
    with pytest.raises(ValidationError, match=r"entity row 0: driver_id=1.5 is not a valid Int64"):
        store.get_online_features(["c:c1"], [{"driver_id": 1.5, "city": "ams"}])


@pytest.mark.parametrize("rows, match", [
    ([{"driver_id": 1}, {"driver": 1}], "entity row 1 lacks join key 'driver_id' needed by view 'a'"),
    ([{"driver_id": 1}, 7], "entity row 1 must be a dict"),
    ([["driver_id"]], "entity row 0 must be a dict"),
    (["driver_id"], "entity row 0 must be a dict"),
])
def test_malformed_rows_keep_their_errors(world, rows, match):
    store, _ = world
    with pytest.raises(ValidationError, match=match):
        store.get_online_features(["a:a1", "b:b1"], rows)


# -- cached resolution and plans ------------------------------------------------------------------------------------
def _ttl_store(tmp_path, ttl):
    store = sk.init_repo(tmp_path / "repo", project="test")
    store.apply(_defs(ttl_a=ttl))
    store.ingest("a", pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "a1": [1.5], "a2": ["x"]}))
    return store


def test_a_registry_change_after_a_cached_resolution_is_seen(tmp_path):
    store = _ttl_store(tmp_path, timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    for _ in range(2):  # resolved and planned, then served from the caches
        assert store.get_online_features(["a:a1"], [{"driver_id": 1}], now=now).statuses == {"a1": [EXPIRED]}
    # another process widens the TTL: once this store sees the new registry state, the next read uses it
    other = sk.FeatureStore(store.repo_path)
    other.apply(_defs(ttl_a=timedelta(hours=3)))
    store.refresh_registry()
    got = store.get_online_features(["a:a1"], [{"driver_id": 1}], now=now)
    assert got.statuses == {"a1": [PRESENT]} and got.values == {"a1": [1.5]}
    # and through this store's own apply (no refresh needed): no TTL at all, then a 1 minute one
    store.apply(_defs(ttl_a=None))
    assert store.get_online_features(["a:a1"], [{"driver_id": 1}], now=now + timedelta(days=400)).statuses \
        == {"a1": [PRESENT]}
    store.apply(_defs(ttl_a=timedelta(minutes=1)))
    assert store.get_online_features(["a:a1"], [{"driver_id": 1}], now=now).statuses == {"a1": [EXPIRED]}


def test_cached_resolution_is_per_registry_state(tmp_path):
    store = _ttl_store(tmp_path, timedelta(hours=1))
    first = store._resolve(["a:a1"])
    assert store._resolve(("a:a1",)) is first and store._resolve(x for x in ["a:a1"]) is first
    store.apply(_defs(ttl_a=timedelta(hours=2)))
    again = store._resolve(["a:a1"])
    assert again is not first and again[0][0].ttl == timedelta(hours=2)


def test_a_resolved_list_changed_in_place_is_replanned(world):
    """Serving passes its own resolved lists: a list edited between calls must not be read with a stale plan."""
    store, views = world
    now = _newest(views)
    a, b = store.get_feature_view("a"), store.get_feature_view("b")
    stage = [(a, ["a1"])]
    rows = [{"driver_id": d} for d in DRIVERS]
    assert list(online_read.read(store.online, stage, rows, now, True).values) == ["a__a1"]
    stage[0][1].append("a2")  # the same list objects, one more feature
    got = online_read.read(store.online, stage, rows, now, True)
    _check(got, oracle_online_read(views, rows, ["a:a1", "a:a2"], now, full_feature_names=True))
    stage.append((b, ["b1"]))
    got = online_read.read(store.online, stage, rows, now, True)
    _check(got, oracle_online_read(views, rows, ["a:a1", "a:a2", "b:b1"], now, full_feature_names=True))
    stage[0] = (b, ["a2"])
    assert list(online_read.read(store.online, stage, rows, now, False).values) == ["a2", "b1"]


def test_plans_for_throwaway_lists_stay_bounded(world):
    store, views = world
    a = store.get_feature_view("a")
    for _ in range(online_read._MAX_PLANS * 2):
        online_read.read(store.online, [(a, ["a1"])], [{"driver_id": 1}], _newest(views), False)
    assert len(online_read._PLANS) <= online_read._MAX_PLANS


# -- OnlineStore.read: the TTL and time bounds over read_raw ---------------------------------------------------------
class _Canned(OnlineStore):
    """A store whose read_raw answers what the test gives it."""

    url = "canned://"

    def __init__(self, raw):
        self.raw = raw

    def read_raw(self, requests):
        return self.raw

    def write(self, view, rows):
        raise NotImplementedError

    def get_meta(self, key):
        return None

    def set_meta(self, key, value):
        pass

    def list_meta(self, prefix):
        return {}

    def drop_view(self, view):
        pass


def test_ttl_and_future_bounds_are_inclusive_where_the_spec_says(world):
    store, _ = world
    a, b = store.get_feature_view("a"), store.get_feature_view("b")  # a: ttl 1h, b: none
    now = T0 + timedelta(hours=5)
    n, floor = to_us(now), to_us(now - timedelta(hours=1))
    times = [floor, floor - 1, n, n + 1, to_us(T0) - 10**15]
    raw = [[(t, [float(i), "v"]) for i, t in enumerate(times)] + [None]] * 2
    keys = [(i,) for i in range(len(times) + 1)]
    ra, rb = _Canned(raw).read([(a, ["a1", "a2"], keys), (b, ["b1", "a2"], keys)], now)
    assert ra.statuses == [PRESENT, EXPIRED, PRESENT, NOT_FOUND, EXPIRED, NOT_FOUND]
    assert rb.statuses == [PRESENT, PRESENT, PRESENT, NOT_FOUND, PRESENT, NOT_FOUND]
    assert ra.values == [[0.0, "v"], [None, None], [2.0, "v"], [None, None], [None, None], [None, None]]
    assert ra.event_timestamps == [now - timedelta(hours=1), None, now, None, None, None]
    assert rb.event_timestamps[4] == T0 - timedelta(microseconds=10**15)


def test_a_store_breaking_the_value_contract_is_an_error(world):
    store, _ = world
    a = store.get_feature_view("a")
    short = _Canned([[(to_us(T0), [1.0])]])  # one value for two features
    with pytest.raises(RuntimeError, match="one value per feature of view 'a'"):
        online_read.read(short, [(a, ["a1", "a2"])], [{"driver_id": 1}], T0, False)
