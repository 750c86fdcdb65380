"""Hand-computed cases for the oracle, each traceable to a sentence of the spec."""

from datetime import datetime, timedelta, timezone

import pytest
from tests.support.oracle import (EXPIRED, NOT_FOUND, PRESENT, OnlineModel, Row, online_read, to_utc, training_set,
                                  value_at)

UTC = timezone.utc
H = timedelta(hours=1)


def T(h, m=0, s=0, us=0):
    """2024-01-01 h:m:s UTC."""
    return datetime(2024, 1, 1, h, m, s, us, tzinfo=UTC)


def row(key, ev, cr=None, wo=0, **values):
    return Row(
        key=(key,) if not isinstance(key, tuple) else key,
        event_ts=ev,
        created_ts=cr or ev,
        write_order=(wo,),
        values=values,
    )


# --------------------------------------------------------------------------- time handling


def test_to_utc_naive_is_utc_and_aware_is_converted():
    assert to_utc(datetime(2024, 1, 1, 10)) == T(10)
    assert to_utc(datetime(2024, 1, 1, 10)).tzinfo is not None
    plus2 = timezone(timedelta(hours=2))
    assert to_utc(datetime(2024, 1, 1, 12, tzinfo=plus2)) == T(10)
    assert to_utc(datetime(2024, 1, 1, 12, tzinfo=plus2)).utcoffset() == timedelta(0)
    assert to_utc("2024-01-01T05:00:00-05:00") == T(10)
    assert to_utc(None) is None


# --------------------------------------------------------------------------- winner and ties


def test_latest_event_at_or_before_t_wins():
    rows = [row(1, T(1), f=1), row(1, T(2), f=2), row(1, T(3), f=3), row(2, T(2, 30), f=99)]
    assert value_at(rows, (1,), T(2, 30), None) == (rows[1], PRESENT)
    assert value_at(rows, (1,), T(2), None) == (rows[1], PRESENT)  # event_ts == t is a candidate
    assert value_at(rows, (1,), T(1, 59), None) == (rows[0], PRESENT)
    assert value_at(rows, (1,), T(0, 59), None) == (None, NOT_FOUND)  # only future rows
    assert value_at(rows, (3,), T(5), None) == (None, NOT_FOUND)  # unknown key


def test_tie_on_event_broken_by_created():
    a = row(1, T(2), cr=T(5), wo=1, f="a")
    b = row(1, T(2), cr=T(4), wo=2, f="b")  # written later, but created earlier
    assert value_at([a, b], (1,), T(3), None) == (a, PRESENT)
    assert value_at([b, a], (1,), T(3), None) == (a, PRESENT)  # list order is irrelevant


def test_tie_on_event_and_created_broken_by_write_order():
    a = row(1, T(2), cr=T(4), wo=1, f="a")
    b = row(1, T(2), cr=T(4), wo=2, f="b")
    assert value_at([a, b], (1,), T(3), None) == (b, PRESENT)
    assert value_at([b, a], (1,), T(3), None) == (b, PRESENT)


def test_event_dominates_created_and_write_order():
    newer_event = row(1, T(2, 0, 0, 1), cr=T(2, 0, 0, 1), wo=1, f="new")
    older_event = row(1, T(2), cr=T(9), wo=5, f="old")  # late row: older event, written later
    assert value_at([newer_event, older_event], (1,), T(3), None) == (newer_event, PRESENT)


def test_late_row_wins_only_when_it_is_newest_at_t():
    on_time = row(1, T(5), wo=1, f="on_time")
    late = row(1, T(3), cr=T(6), wo=2, f="late")  # ingested after, event older
    rows = [on_time, late]
    assert value_at(rows, (1,), T(4), None) == (late, PRESENT)
    assert value_at(rows, (1,), T(6), None) == (on_time, PRESENT)


def test_microsecond_precision_matters():
    a = row(1, T(2, 0, 0, 0), f="a")
    b = row(1, T(2, 0, 0, 1), f="b")
    assert value_at([a, b], (1,), T(2, 0, 0, 0), None) == (a, PRESENT)
    assert value_at([a, b], (1,), T(2, 0, 0, 1), None) == (b, PRESENT)


def test_null_value_in_winner_is_present():
    rows = [row(1, T(1), f=1), row(1, T(2), f=None)]
    assert value_at(rows, (1,), T(3), None) == (rows[1], PRESENT)
    out = training_set({"v": (["k"], None, rows)}, [{"k": 1, "event_timestamp": T(3)}], ["v:f"], with_statuses=True)
    assert out[0]["f"] is None and out[0]["__status__"] == {"f": PRESENT}


def test_composite_keys():
    rows = [row((1, "a"), T(1), f=1), row((1, "b"), T(1), f=2)]
    assert value_at(rows, (1, "b"), T(2), None)[0] is rows[1]
    assert value_at(rows, (1, "c"), T(2), None) == (None, NOT_FOUND)


# --------------------------------------------------------------------------- TTL


def test_ttl_both_bounds_inclusive():
    r = row(1, T(2), f=1)
    ttl = H
    assert value_at([r], (1,), T(2), ttl) == (r, PRESENT)  # event_ts == t
    assert value_at([r], (1,), T(3), ttl) == (r, PRESENT)  # event_ts == t - ttl
    assert value_at([r], (1,), T(3, 0, 0, 1), ttl) == (None, EXPIRED)  # one microsecond too old
    assert value_at([r], (1,), T(1, 59, 59, 999999), ttl) == (None, NOT_FOUND)  # before the row


def test_no_ttl_and_zero_ttl_have_no_lower_bound():
    r = row(1, T(0), f=1)
    far = datetime(2030, 1, 1, tzinfo=UTC)
    assert value_at([r], (1,), far, None) == (r, PRESENT)
    assert value_at([r], (1,), far, timedelta(0)) == (r, PRESENT)


def test_ttl_falls_back_to_older_row_inside_window_never_outside():
    rows = [row(1, T(1), f="old"), row(1, T(3), f="mid")]
    # at 4:00 with ttl 1h, window [3:00, 4:00] -> mid
    assert value_at(rows, (1,), T(4), H)[0].values["f"] == "mid"
    # at 4:00:01, window [3:00:01, 4:00:01] -> nothing in window, rows exist before -> EXPIRED
    assert value_at(rows, (1,), T(4, 0, 1), H) == (None, EXPIRED)


def test_expired_vs_not_found():
    rows = [row(1, T(1), f=1), row(1, T(10), f=2)]
    assert value_at(rows, (1,), T(5), H) == (None, EXPIRED)  # old row exists, future row ignored
    assert value_at(rows, (1,), T(0, 30), H) == (None, NOT_FOUND)  # nothing at or before t
    assert value_at(rows, (2,), T(5), H) == (None, NOT_FOUND)  # no rows for key
    assert value_at(rows, (1,), T(5), None)[1] == PRESENT  # without TTL nothing expires


def test_ttl_with_ties_at_the_boundary():
    a = row(1, T(2), cr=T(2), wo=1, f="a")
    b = row(1, T(2), cr=T(2), wo=2, f="b")
    assert value_at([a, b], (1,), T(3), H) == (b, PRESENT)


# --------------------------------------------------------------------------- available vs event


def test_available_filters_rows_created_after_t():
    backfill = row(1, T(1), cr=T(5), wo=2, f="backfill")
    early = row(1, T(0, 30), cr=T(0, 30), wo=1, f="early")
    rows = [early, backfill]
    assert value_at(rows, (1,), T(2), None, "event") == (backfill, PRESENT)
    assert value_at(rows, (1,), T(2), None, "available") == (early, PRESENT)
    assert value_at(rows, (1,), T(5), None, "available") == (backfill, PRESENT)  # created_ts == t counts


def test_available_not_found_when_only_unknown_rows():
    backfill = row(1, T(1), cr=T(5), f="backfill")
    assert value_at([backfill], (1,), T(2), None, "available") == (None, NOT_FOUND)
    # EXPIRED in available mode only counts rows already known at t
    assert value_at([backfill], (1,), T(4), H, "available") == (None, NOT_FOUND)
    assert value_at([backfill], (1,), T(4), H, "event") == (None, EXPIRED)
    assert value_at([backfill], (1,), T(6), H, "available") == (None, EXPIRED)


def test_available_created_tie_break_still_applies():
    a = row(1, T(1), cr=T(2), wo=1, f="a")
    b = row(1, T(1), cr=T(3), wo=2, f="b")
    assert value_at([a, b], (1,), T(2, 30), None, "available") == (a, PRESENT)
    assert value_at([a, b], (1,), T(3), None, "available") == (b, PRESENT)
    assert value_at([a, b], (1,), T(2, 30), None, "event") == (b, PRESENT)


def test_bad_point_in_time_rejected():
    with pytest.raises(ValueError):
        value_at([], (1,), T(1), None, "created")


# --------------------------------------------------------------------------- training sets


VIEWS = {
    "v": (["k"], H, [row(1, T(1), f=10, g="x"), row(1, T(2), f=20, g=None), row(2, T(1, 30), f=30, g="y")]),
    "w": (["k"], None, [row(1, T(0), f=-1)]),
}


def test_training_set_keeps_order_duplicates_and_columns():
    entity = [
        {"k": 2, "event_timestamp": T(2), "label": "a"},
        {"k": 1, "event_timestamp": T(2, 30), "label": "b"},
        {"k": 1, "event_timestamp": T(2, 30), "label": "b"},  # duplicate stays duplicated
        {"k": 1, "event_timestamp": T(1, 30), "label": "c"},
    ]
    out = training_set(VIEWS, entity, ["v:f", "v:g"])
    assert out == [
        {"k": 2, "event_timestamp": T(2), "label": "a", "f": 30, "g": "y"},
        {"k": 1, "event_timestamp": T(2, 30), "label": "b", "f": 20, "g": None},
        {"k": 1, "event_timestamp": T(2, 30), "label": "b", "f": 20, "g": None},
        {"k": 1, "event_timestamp": T(1, 30), "label": "c", "f": 10, "g": "x"},
    ]


def test_training_set_mixed_time_zones():
    minus5 = timezone(timedelta(hours=-5))
    entity = [
        {"k": 1, "event_timestamp": datetime(2024, 1, 1, 1, 30)},  # naive = UTC 01:30 -> f=10
        {"k": 1, "event_timestamp": datetime(2023, 12, 31, 21, 0, tzinfo=minus5)},  # 02:00 UTC -> f=20
        {"k": 1, "event_timestamp": datetime(2023, 12, 31, 20, 59, 59, tzinfo=minus5)},  # 01:59:59 -> 10
    ]
    out = training_set(VIEWS, entity, ["v:f"])
    assert [r["f"] for r in out] == [10, 20, 10]
    assert out[1]["event_timestamp"] == entity[1]["event_timestamp"]  # input column kept as given


def test_training_set_null_keys_get_nulls():
    entity = [{"k": None, "event_timestamp": T(5)}, {"k": 1, "event_timestamp": T(2)}]
    out = training_set(VIEWS, entity, ["w:f", "v:g"], with_statuses=True)
    assert out[0]["f"] is None and out[0]["g"] is None
    assert out[0]["__status__"] == {"f": NOT_FOUND, "g": NOT_FOUND}
    assert out[1]["f"] == -1 and out[1]["g"] is None and out[1]["__status__"]["g"] == PRESENT


def test_training_set_expired_and_not_found():
    entity = [
        {"k": 1, "event_timestamp": T(3, 0, 1)},
        {"k": 1, "event_timestamp": T(0, 30)},
        {"k": 9, "event_timestamp": T(3)},
    ]
    out = training_set(VIEWS, entity, ["v:f"], with_statuses=True)
    assert [r["f"] for r in out] == [None, None, None]
    assert [r["__status__"]["f"] for r in out] == [EXPIRED, NOT_FOUND, NOT_FOUND]


def test_training_set_full_feature_names_and_collisions():
    entity = [{"k": 1, "event_timestamp": T(2)}]
    out = training_set(VIEWS, entity, ["v:f", "w:f"], full_feature_names=True)
    assert out == [{"k": 1, "event_timestamp": T(2), "v__f": 20, "w__f": -1}]
    with pytest.raises(ValueError):
        training_set(VIEWS, entity, ["v:f", "w:f"])  # both would be named "f"
    with pytest.raises(ValueError):
        training_set(VIEWS, [{"k": 1, "event_timestamp": T(2), "f": 0}], ["v:f"])  # clashes with input column
    with pytest.raises(ValueError):
        training_set(VIEWS, entity, ["v:f", "v:f"])


def test_training_set_custom_timestamp_column_and_available():
    rows = [row(1, T(1), cr=T(1), wo=1, f="early"), row(1, T(1, 30), cr=T(4), wo=2, f="backfill")]
    views = {"v": (["k"], None, rows)}
    entity = [{"k": 1, "ts": T(2)}]
    assert training_set(views, entity, ["v:f"], timestamp_column="ts")[0]["f"] == "backfill"
    assert training_set(views, entity, ["v:f"], timestamp_column="ts", point_in_time="available")[0]["f"] == "early"
    with pytest.raises(ValueError):
        training_set(views, entity, ["v:f"])  # no event_timestamp column


def test_training_set_views_with_different_join_keys():
    views = {
        "driver": (["driver"], None, [row(7, T(1), rating=4.5)]),
        "pair": (["driver", "rider"], None, [row((7, 3), T(1), trips=2)]),
    }
    entity = [{"driver": 7, "rider": 3, "event_timestamp": T(2)}, {"driver": 7, "rider": 4, "event_timestamp": T(2)}]
    out = training_set(views, entity, ["driver:rating", "pair:trips"])
    assert [(r["rating"], r["trips"]) for r in out] == [(4.5, 2), (4.5, None)]


# --------------------------------------------------------------------------- online


def test_online_read_is_value_at_now():
    res = online_read(
        VIEWS, [{"k": 1}, {"k": 2}, {"k": None}, {"k": 5}], ["v:f", "w:f"], T(2, 30), full_feature_names=True
    )
    # k=2's row at 1:30 is exactly now - ttl: still present
    assert res["values"] == {"v__f": [20, 30, None, None], "w__f": [-1, None, None, None]}
    assert res["statuses"] == {
        "v__f": [PRESENT, PRESENT, NOT_FOUND, NOT_FOUND],
        "w__f": [PRESENT, NOT_FOUND, NOT_FOUND, NOT_FOUND],
    }
    assert res["event_timestamps"]["v__f"] == [T(2), T(1, 30), None, None]
    res = online_read(VIEWS, [{"k": 2}], ["v:f"], T(2, 30, 0, 1))
    assert res == {"values": {"f": [None]}, "statuses": {"f": [EXPIRED]}, "event_timestamps": {"f": [None]}}


def test_online_model_newest_wins_and_ttl_on_read():
    rows = [row(1, T(1), wo=1, f="a"), row(1, T(3), wo=2, f="b"), row(1, T(2), cr=T(4), wo=3, f="late")]
    m = OnlineModel({"v": (["k"], H)})
    m.materialize("v", rows[:2], T(0), T(4))  # writes b
    m.materialize("v", rows, T(1, 30), T(2, 30))  # winner at 2:30 is 'late' (event 2:00) < b: no replace
    assert m.read([{"k": 1}], ["v:f"], T(4))["values"] == {"f": ["b"]}
    assert m.read([{"k": 1}], ["v:f"], T(4, 0, 1))["statuses"] == {"f": [EXPIRED]}
    assert m.read([{"k": 2}], ["v:f"], T(4))["statuses"] == {"f": [NOT_FOUND]}
    # the invariant: after materialising all rows up to T, reading at now >= T equals value_at(now)
    for now in (T(4), T(4, 0, 1)):
        assert m.read([{"k": 1}], ["v:f"], now) == online_read({"v": (["k"], H, rows)}, [{"k": 1}], ["v:f"], now)


def test_online_model_materialize_writes_winner_at_end_not_latest_row():
    rows = [row(1, T(1), f="a"), row(1, T(5), f="future")]
    m = OnlineModel({"v": (["k"], None)})
    m.materialize("v", rows, T(0), T(2))
    assert m.read([{"k": 1}], ["v:f"], T(2))["values"] == {"f": ["a"]}


def test_online_model_expired_rows_on_write():
    rows = [row(1, T(1), f="a")]
    lenient = OnlineModel({"v": (["k"], H)})
    strict = OnlineModel({"v": (["k"], H)}, ttl_on_write=True)
    for m in (lenient, strict):
        m.materialize("v", rows, T(0), T(5))  # the row is already older than 5:00 - 1h
    assert lenient.read([{"k": 1}], ["v:f"], T(5))["statuses"] == {"f": [EXPIRED]}
    assert strict.read([{"k": 1}], ["v:f"], T(5))["statuses"] == {"f": [NOT_FOUND]}
    # the lenient model agrees with the spec's invariant (online read == value at t=now)
    assert lenient.read([{"k": 1}], ["v:f"], T(5)) == online_read({"v": (["k"], H, rows)}, [{"k": 1}], ["v:f"], T(5))


def test_online_model_materialize_without_start_and_push():
    rows = [row(1, T(1), wo=1, f="a"), row(1, T(3), wo=2, f="b")]
    m = OnlineModel({"v": (["k"], None)})
    m.write_newest("v", rows, (1,), T(2))  # push at 2:00 sees only the 1:00 row
    assert m.read([{"k": 1}], ["v:f"], T(4))["values"] == {"f": ["a"]}
    m.materialize("v", rows, None, T(3))
    assert m.read([{"k": 1}], ["v:f"], T(4))["values"] == {"f": ["b"]}
