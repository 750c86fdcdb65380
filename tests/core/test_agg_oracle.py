"""Hand-computed cases for the aggregation oracle, each traceable to a sentence of transformations.md."""

import math
from datetime import datetime, timedelta, timezone

import pytest
from tests.support.agg_oracle import Agg, aggregate, apply_function, same_value, training_set
from tests.support.oracle import Row

UTC = timezone.utc
H = timedelta(hours=1)


def T(h, m=0, s=0, us=0):
    return datetime(2024, 1, 1, h, m, s, us, tzinfo=UTC)


def row(key, ev, cr=None, wo=0, **values):
    return Row(key=(key,), event_ts=ev, created_ts=cr or ev, write_order=(wo,), values=values)


def val(rows, t, function, window=2 * H, column="x", k=None, **kw):
    return aggregate(rows, (1,), t, Agg("out", column, function, window, k), H, **kw)


def test_window_is_left_open_right_closed_with_a_tiled_tail():
    rows = [row(1, T(1), x=1), row(1, T(1, 0, 0, 1), x=2), row(1, T(3), x=4), row(1, T(3, 0, 0, 1), x=8)]
    # t = 3:00, w = 2h: start = floor_h(1:00) = 1:00 -> (1:00, 3:00]: the row at 1:00 is out, 3:00 is in
    assert val(rows, T(3), "sum") == 2 + 4
    # t = 3:30: start = floor_h(1:30) = 1:00 -> the window is 2.5 h long (sawtooth)
    assert val(rows, T(3, 30), "sum") == 2 + 4 + 8
    # t = 2:59:59: start = floor_h(0:59:59) = 0:00 -> the row at 1:00 is in; rows after t never count
    assert val(rows, T(2, 59, 59), "sum") == 1 + 2


def test_functions_and_empty_windows():
    rows = [row(1, T(1, 10), wo=1, x=3), row(1, T(1, 20), wo=2, x=None), row(1, T(1, 30), wo=3, x=5),
            row(1, T(1, 40), wo=4, x=4)]
    t = T(2)
    assert val(rows, t, "count") == 3 and val(rows, t, "count(*)") == 4
    assert val(rows, t, "sum") == 12 and val(rows, t, "mean") == 4.0
    assert val(rows, t, "min") == 3 and val(rows, t, "max") == 5
    assert val(rows, t, "var") == 1.0 and val(rows, t, "stddev") == 1.0
    assert val(rows, t, "last") == 4 and val(rows, t, "last_k", k=2) == [4, 5]
    assert val(rows, T(1, 25), "last") is None  # the newest row's value is null: last returns it
    assert val(rows, T(1, 25), "last_k", k=5) == [3]
    assert val(rows, T(1, 10), "var") is None  # n < 2
    empty = T(0, 30)
    assert [val(rows, empty, f) for f in ("count", "count(*)", "sum", "mean", "min", "max", "var", "last")] == \
        [0, 0, None, None, None, None, None, None]
    assert val(rows, empty, "last_k", k=3) == []


def test_ties_order_last_by_created_then_write_order():
    rows = [row(1, T(1), cr=T(1, 5), wo=1, x="a"), row(1, T(1), cr=T(1, 5), wo=2, x="b"),
            row(1, T(1), cr=T(1, 1), wo=3, x="c")]
    assert val(rows, T(2), "last") == "b" and val(rows, T(2), "last_k", k=3) == ["b", "a", "c"]


def test_available_mode_hides_rows_not_yet_known():
    rows = [row(1, T(1), cr=T(1), x=1), row(1, T(1, 30), cr=T(5), x=10)]
    assert val(rows, T(2), "sum") == 11
    assert val(rows, T(2), "sum", point_in_time="available") == 1


def test_event_id_correction_replaces_value_and_time():
    rows = [row(1, T(1), cr=T(1), wo=1, x=5, id="e1"), row(1, T(3), cr=T(4), wo=2, x=7, id="e1"),
            row(1, T(1, 30), wo=3, x=1, id=None), row(1, T(1, 40), wo=4, x=1, id=None)]
    # the correction (created 4:00) moved the event to 3:00 with value 7: at 2:00 it no longer counts
    assert val(rows, T(2), "sum", event_id="id") == 2
    assert val(rows, T(4), "sum", window=4 * H, event_id="id") == 9
    # without event_id each row counts once
    assert val(rows, T(4), "sum", window=4 * H) == 14
    # in available mode the correction is not visible before it was created
    assert val(rows, T(2), "sum", event_id="id", point_in_time="available") == 7


def test_nan_is_a_value_that_propagates():
    rows = [row(1, T(1, 10), x=1.0), row(1, T(1, 20), x=math.nan), row(1, T(1, 30), x=None)]
    assert val(rows, T(2), "count") == 2
    for f in ("sum", "mean", "min", "max"):
        assert math.isnan(val(rows, T(2), f))
    assert math.isnan(val(rows, T(2), "last_k", k=1)[0])


def test_int_sum_is_exact_and_overflow_is_an_error():
    big = 2 ** 62
    assert val([row(1, T(1, 10), x=big), row(1, T(1, 20), x=big - 1)], T(2), "sum") == 2 ** 63 - 1
    with pytest.raises(OverflowError):
        val([row(1, T(1, 10), x=big), row(1, T(1, 20), x=big)], T(2), "sum")


def test_training_set_keeps_rows_and_order():
    rows = [row(1, T(1), x=1)]
    ents = [{"k": 1, "event_timestamp": T(2), "label": 0}, {"k": None, "event_timestamp": T(2), "label": 1},
            {"k": 1, "event_timestamp": T(0), "label": 2}]
    out = training_set(rows, ["k"], [Agg("n", "x", "count", 2 * H)], H, ents)
    assert [(r["label"], r["n"]) for r in out] == [(0, 1), (1, 0), (2, 0)]


def test_same_value_tolerance():
    assert same_value(1.0, 1.0 + 1e-12) and not same_value(1.0, 1.0001) and same_value(math.nan, math.nan)
    assert same_value([1, 2], [1, 2]) and not same_value(None, 0) and apply_function("count(*)", [], None) == 0
