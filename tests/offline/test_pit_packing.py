"""The packed BIGINT ASOF key (key_packing.KeyPacking) used at tie level 1: exact against the oracle.

At tie level 1 rows of one entity tie on event time but never on (event, created), so the winner among tied rows is
decided by created time alone. The DuckDB engine packs (event, created) into one BIGINT when the history's event
granularity and created-minus-event range allow it, else keeps the 128-bit key. These tests build histories with
many tied groups whose winners differ from write order, at every granularity the packing tries, with created times
before and after the event, TTL edges, entity times before the first event, on events and far in the future, and
check every row against tests/support/oracle.py (and that the packed path, not the fallback, really ran)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skewless as sk
from skewless.offline.base import EVENT_TIES
from skewless.offline.key_packing import KeyPacking, packing, packing_stats_sql

from tests.support import oracle

UTC = timezone.utc
T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
STEPS = {"s": timedelta(seconds=1), "ms": timedelta(milliseconds=1), "us": US}


def stats(n=10, created=10, e=(0, 100), d=(0, 7), e_div=(True, True, True), d_div=(False, False, True)):
    return (n, created, *e, *d, *e_div, *d_div)


def test_packing_picks_the_coarsest_step_and_refuses_what_does_not_fit():
    p = packing(stats(e=(5_000_000, 9_000_000), d=(-2_000, 6_000), d_div=(False, True, True)))
    assert p == KeyPacking(5_000_000, 1_000_000, 4, -2_000, 1_000, 4)  # delays 0..8: 4 bits
    assert packing(stats(e_div=(False, False, True))).event_step == 1
    # 40 bits of event steps + 23 bits of delay: one bit too many
    assert packing(stats(e=(0, (1 << 40) - 1), d=(0, (1 << 23) - 1), e_div=(False, False, True))) is None
    assert packing(stats(e=(0, (1 << 40) - 1), d=(0, (1 << 22) - 1), e_div=(False, False, True))) is not None
    assert packing(stats(created=9)) is None  # a null created time: the general key
    assert packing(stats(n=0, created=0)) is None
    assert packing(None) is None


@st.composite
def cases(draw):
    step = draw(st.sampled_from(sorted(STEPS)))
    d_step = STEPS[draw(st.sampled_from(sorted(STEPS)))]
    unit = STEPS[step]
    n_events = draw(st.integers(1, 6))
    events = [T0 + unit * draw(st.integers(0, 40)) for _ in range(n_events)]
    batches = []
    used = set()  # (key, event, created): level 1 allows no ties on these
    for _ in range(draw(st.integers(1, 3))):
        rows = []
        for _ in range(draw(st.integers(1, 12))):
            k = draw(st.integers(0, 2))
            ev = draw(st.sampled_from(events))
            cr = ev + d_step * draw(st.integers(-5, 5))
            if (k, ev, cr) in used:
                continue
            used.add((k, ev, cr))
            rows.append((k, ev, cr, draw(st.one_of(st.none(), st.integers(0, 10**6)))))
        if rows:
            batches.append(rows)
    ttl = draw(st.sampled_from([None, unit * 3, unit * 10]))
    times = list(events) + [min(events) - US, max(events) + US, T0 + timedelta(days=365 * 300)]
    times += [e + ttl for e in events] if ttl else []  # the inclusive TTL lower bound exactly
    times += [e + unit * draw(st.integers(-3, 3)) + US * draw(st.integers(-1, 1)) for e in events]
    ents = [(draw(st.integers(0, 3)), draw(st.sampled_from(times))) for _ in range(draw(st.integers(1, 25)))]
    return dict(batches=batches, ttl=ttl, ents=ents)


def _run(batches, ttl, ents, *, expect_packed: bool | None):
    with tempfile.TemporaryDirectory() as d:
        store = sk.init_repo(d, project="t")
        e = sk.Entity("e", join_keys=["k"])
        store.apply([e, sk.FeatureView("v", entities=[e], ttl=ttl,
                                       schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])])
        rows = []
        for b, batch in enumerate(batches):
            store.ingest("v", pd.DataFrame({"k": [r[0] for r in batch], "event_timestamp": [r[1] for r in batch],
                                            "created_timestamp": [r[2] for r in batch],
                                            "x": pd.array([r[3] for r in batch], dtype="Int64")}))
            rows += [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]}) for i, r in enumerate(batch)]
        files = store.offline.files("v", store.offline.version("v"))
        entity = pd.DataFrame({"k": [k for k, _ in ents], "event_timestamp": [t for _, t in ents],
                               "i": range(len(ents))})
        job = store.get_historical_features(entity, ["v:x"], include_event_timestamps=True)
        if files.tie_level == EVENT_TIES:  # ingest recorded the packing: retrieval used it, no stats scan
            assert files.key_packing_known and (files.key_packing is not None) == ("HUGEINT" not in job.sql)
        if files.tie_level == EVENT_TIES and expect_packed is not None:
            packed = "HUGEINT" not in job._plan.per_view[0]
            assert packed == expect_packed, job._plan.per_view[0]
        out = job.to_pandas()
        assert list(out["i"]) == list(range(len(ents)))  # input order
        for (k, t), x, ev in zip(ents, out["x"], out["v__event_timestamp"]):
            win, status = oracle.value_at(rows, (k,), t, ttl)
            want = win.values["x"] if win else None
            got = None if pd.isna(x) else int(x)
            assert got == want, (k, t, win, status)
            assert (None if pd.isna(ev) else ev.to_pydatetime()) == (win.event_ts if win else None)
        return files.tie_level


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_packed_key_matches_the_oracle(case):
    _run(case["batches"], case["ttl"], case["ents"], expect_packed=True)


def test_many_tied_groups_winner_by_created_not_write_order():
    """Every (key, event) group tied, the later write carrying the earlier created time: write order never decides."""
    ev = [T0 + timedelta(seconds=s) for s in range(0, 50, 5)]
    first = [(k, e, e + timedelta(minutes=30), 100 * k + i) for k in range(4) for i, e in enumerate(ev)]
    second = [(k, e, e + timedelta(minutes=10), -(100 * k + i)) for k in range(4) for i, e in enumerate(ev)]
    third = [(k, e, e - timedelta(seconds=1), 7) for k in range(4) for e in ev[::2]]  # created before the event
    ents = [(k, e + timedelta(seconds=s)) for k in range(5) for e in ev for s in (0, 2)] + [(0, T0 - US)]
    level = _run([first, second, third], timedelta(seconds=4), ents, expect_packed=True)
    assert level == EVENT_TIES


def test_unpackable_history_falls_back_to_the_wide_key():
    """Microsecond events over centuries and delays of decades: more than 62 bits, the 128-bit key, still exact."""
    rows = [(0, T0, T0 + timedelta(days=365 * 40), 1), (0, T0, T0 - timedelta(days=365 * 40), 2),
            (0, T0 + timedelta(days=365 * 200) + US, T0, 3), (1, T0 - timedelta(days=365 * 100), T0, 4)]
    ents = [(0, T0), (0, T0 + timedelta(days=365 * 201)), (1, T0), (0, T0 - US)]
    assert _run([rows], None, ents, expect_packed=False) == EVENT_TIES


def test_stats_sql_is_one_scan():
    sql = packing_stats_sql("(SELECT 1)")
    assert sql.count("FROM") == 2 and "epoch_us" in sql
