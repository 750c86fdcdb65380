"""The BIGINT key packing recorded at ingest (Delta property ``skewless.keyPacking``, ``HistoryFiles.key_packing``).

What must hold, checked here against direct scans, per-row arithmetic and tests/support/oracle.py:

* every version's recorded packing covers every row of that version (each row's event and delay on the packing's
  grids and inside its ranges), also under concurrent writers;
* an ingest whose rows fit adds exactly one Delta version (the append: no properties commit), one that does not
  fit adds two (the widened packing first, then the append), and "none" is recorded only when no packing fits;
* retrieval with the recorded packing runs no stats scan and equals the oracle, also for times before the first
  event and far past the packing's capacity;
* histories without the property (written before it existed, or with a value it cannot read) fall back to the
  scan, and the next ingest records it.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime, timedelta, timezone
from unittest import mock

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skewless as sk
from skewless import ingest as ingest_mod
from skewless.offline import duckdb_engine
from skewless.offline.base import EVENT_TIES, FULL_TIES
from skewless.offline.delta import KEY_PACKING, TIE_LEVEL
from skewless.offline.key_packing import (KeyPacking, combine_stats, covers, envelope, packing, packing_stats_arrow,
                                         packing_stats_sql)

from tests.support import oracle

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
GRAIN = {"s": 1_000_000, "ms": 1_000, "us": 1}


def us(t: datetime) -> int:
    return (t - EPOCH) // US


def make_store(d: str, ttl: timedelta | None = None) -> sk.FeatureStore:
    store = sk.init_repo(d, project="t")
    e = sk.Entity("e", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], ttl=ttl,
                                   schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])])
    return store


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame({"k": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows],
                         "created_timestamp": [r[2] for r in rows], "x": pd.array([r[3] for r in rows], "Int64")})


def table_rows(store: sk.FeatureStore, version: int) -> list[tuple[int, int]]:
    """(event, created) in microseconds of every row at ``version``, read straight from the Delta table."""
    t = DeltaTable(store.offline._uri("v"), version=version).to_pyarrow_table(
        columns=["event_timestamp", "created_timestamp"])
    return list(zip(pc_us(t.column(0)), pc_us(t.column(1))))


def pc_us(col) -> list[int | None]:
    return [None if v is None else us(v) for v in col.to_pylist()]


def assert_covers(p: KeyPacking, rows: list[tuple[int, int]]) -> None:
    """Every row has a key under ``p``, by plain arithmetic (not key_packing.covers): on both grids, inside both ranges,
    and the packed key and the capped probe are non-negative BIGINTs."""
    assert 0 <= p.delay_bits <= 62 and p.event_steps == (1 << (62 - p.delay_bits)) - 1
    for ev, cr in rows:
        assert cr is not None
        i, ri = divmod(ev - p.event_min, p.event_step)
        j, rj = divmod(cr - ev - p.delay_min, p.delay_step)
        assert ri == 0 and rj == 0, (p, ev, cr)
        assert 0 <= i <= p.event_steps and 0 <= j < 1 << p.delay_bits, (p, ev, cr)
        assert 0 <= (i << p.delay_bits) + j < 1 << 63
    assert (p.event_steps << p.delay_bits) + (1 << p.delay_bits) - 1 < 1 << 63  # the largest probe


def scan_stats(rows: list[tuple[int, int]]) -> tuple:
    """packing_stats_sql over the rows, run by DuckDB (the retrieval-time scan the recorded packing replaces)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ev = pa.array([e for e, _ in rows], pa.int64()).cast(pa.timestamp("us", "UTC"))
    cr = pa.array([c for _, c in rows], pa.int64()).cast(pa.timestamp("us", "UTC"))
    con.register("h", pa.table({"event_timestamp": ev, "created_timestamp": cr}))
    return con.execute(packing_stats_sql("h")).fetchall()[0]


def check_oracle(store: sk.FeatureStore, oracle_rows, ents, ttl, *, scan_allowed: bool):
    """Retrieval equals the oracle; with ``scan_allowed`` False, it must not run the stats scan at all."""
    entity = pd.DataFrame({"k": [k for k, _ in ents], "event_timestamp": [t for _, t in ents],
                           "i": range(len(ents))})

    def no_scan(history):
        raise AssertionError("retrieval ran the packing stats scan although the packing was recorded")
    with mock.patch.object(duckdb_engine, "packing_stats_sql",
                           no_scan if not scan_allowed else duckdb_engine.packing_stats_sql):
        job = store.get_historical_features(entity, ["v:x"], include_event_timestamps=True)
    out = job.to_pandas()
    assert list(out["i"]) == list(range(len(ents)))
    for (k, t), x, ev in zip(ents, out["x"], out["v__event_timestamp"]):
        win, status = oracle.value_at(oracle_rows, (k,), t, ttl)
        assert (None if pd.isna(x) else int(x)) == (win.values["x"] if win else None), (k, t, win, status)
        assert (None if pd.isna(ev) else ev.to_pydatetime()) == (win.event_ts if win else None)
    return job


# -- the pieces, against DuckDB ------------------------------------------------------------------------------------
times = st.integers(-(1 << 55), 1 << 55)


@st.composite
def raw_rows(draw, nulls: bool = True):
    step = draw(st.sampled_from(sorted(GRAIN.values())))
    d_step = draw(st.sampled_from(sorted(GRAIN.values())))
    base = draw(st.integers(-(1 << 50), 1 << 50)) // step * step  # before 1970 as often as after
    n = draw(st.integers(1, 30))
    spread = draw(st.sampled_from([1, 50, 1 << 20, 1 << 40]))
    d_spread = draw(st.sampled_from([0, 5, 1 << 20, 1 << 40]))
    evs = [base + step * draw(st.integers(0, spread)) for _ in range(n)]
    out = []
    for ev in evs:
        cr = None if nulls and draw(st.integers(0, 9)) == 0 else ev + d_step * draw(st.integers(-d_spread, d_spread))
        out.append((ev, cr))
    return out


@settings(max_examples=150, deadline=None)
@given(rows=raw_rows())
def test_stats_in_memory_equal_the_sql_scan(rows):
    ev = pa.array([e for e, _ in rows], pa.int64()).cast(pa.timestamp("us", "UTC"))
    cr = pa.array([c for _, c in rows], pa.int64()).cast(pa.timestamp("us", "UTC"))
    table = pa.table({"event_timestamp": pa.chunked_array([ev[:3], ev[3:]]), "created_timestamp": cr})
    got = packing_stats_arrow(table)
    want = scan_stats(rows)
    assert got[:6] == want[:6]
    # bool_and over no delays is NULL in SQL; either way no packing is possible then (created_rows != rows)
    assert [bool(x) for x in got[6:9]] == [bool(x) for x in want[6:9]]
    if got[1]:
        assert [bool(x) for x in got[9:]] == [bool(x) for x in want[9:]]


def test_stats_in_memory_refuse_what_they_cannot_compute_exactly():
    ns = pa.table({"event_timestamp": pa.array([1], pa.timestamp("ns", "UTC")),
                   "created_timestamp": pa.array([1], pa.timestamp("ns", "UTC"))})
    assert packing_stats_arrow(ns) is None
    huge = pa.array([(1 << 62) + 5], pa.int64()).cast(pa.timestamp("us", "UTC"))
    assert packing_stats_arrow(pa.table({"event_timestamp": huge, "created_timestamp": huge})) is None


@settings(max_examples=300, deadline=None)
@given(a=raw_rows(nulls=False), b=raw_rows(nulls=False))
def test_envelope_covers_its_rows_and_exists_exactly_when_a_packing_does(a, b):
    stats = scan_stats(a + b)
    assert combine_stats(scan_stats(a), scan_stats(b))[:6] == stats[:6]
    p = envelope(stats)
    assert (p is None) == (packing(stats) is None)
    if p is not None:
        assert_covers(p, a + b)
        assert covers(p, stats) and covers(p, scan_stats(a))
        assert p.event_step == packing(stats).event_step and p.delay_step == packing(stats).delay_step


def test_covers_refuses_rows_off_the_grid_or_out_of_range():
    p = envelope(scan_stats([(0, 0), (10_000_000, 12_000_000)]))  # whole seconds, delays 0..2 s
    assert covers(p, scan_stats([(20_000_000, 21_000_000)]))
    assert not covers(p, scan_stats([(20_000_500, 21_000_500)]))  # events finer than seconds
    assert not covers(p, scan_stats([(20_000_000, 21_000_500)]))  # delays finer than seconds
    assert not covers(p, scan_stats([(0, 3600_000_000)]))  # an hour of delay
    assert not covers(p, scan_stats([(0, -3600_000_000)]))  # created an hour before the event
    assert not covers(p, scan_stats([(p.event_min - 1_000_000, p.event_min)]))  # before the event range
    far = p.event_min + (p.event_steps + 1) * p.event_step  # past the capacity (past any timestamp, too)
    assert not covers(p, (1, 1, far, far, p.delay_min, p.delay_min, *(True,) * 6))
    assert covers(p, (1, 1, far - p.event_step, far - p.event_step, p.delay_min, p.delay_min, *(True,) * 6))
    assert not covers(p, (2, 1, 0, 0, 0, 0, True, True, True, True, True, True))  # a null created time


# -- through ingest and retrieval ----------------------------------------------------------------------------------
@st.composite
def histories(draw):
    base = draw(st.sampled_from([T0, datetime(1965, 7, 1, tzinfo=UTC)]))
    batches, used = [], set()
    for _ in range(draw(st.integers(1, 4))):
        step = US * GRAIN[draw(st.sampled_from(sorted(GRAIN)))]
        d_step = US * GRAIN[draw(st.sampled_from(sorted(GRAIN)))] * draw(st.sampled_from([1, 7, 3600]))
        shift = draw(st.sampled_from([0, 30, -30, 10**5, -(10**9)]))
        rows = []
        for _ in range(draw(st.integers(1, 8))):
            k = draw(st.integers(0, 2))
            ev = base + step * (shift + draw(st.integers(0, 20)))
            cr = ev + d_step * draw(st.integers(-3, 3))
            if (k, ev, cr) not in used:  # no full ties: the packing stays in use (tie level <= 1)
                used.add((k, ev, cr))
                rows.append((k, ev, cr, draw(st.integers(0, 10**6))))
        if rows:
            batches.append(rows)
    ttl = draw(st.sampled_from([None, timedelta(seconds=5)]))
    return batches, ttl


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=histories(), ent_seed=st.randoms(use_true_random=False))
def test_random_ingests_keep_a_covering_packing_and_retrieval_matches_the_oracle(case, ent_seed):
    batches, ttl = case
    with tempfile.TemporaryDirectory() as d:
        store = make_store(d, ttl)
        oracle_rows, before, version, level = [], None, None, None
        for b, batch in enumerate(batches):
            store.ingest("v", frame(batch))
            oracle_rows += [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]}) for i, r in enumerate(batch)]
            new_version = store.offline.version("v")
            files = store.offline.files("v", new_version)
            rows = table_rows(store, new_version)
            assert files.tie_level < FULL_TIES and files.key_packing_known
            fits_exactly = packing(scan_stats(rows))
            if files.key_packing is None:
                assert fits_exactly is None  # "none" only when no packing fits
            else:
                assert_covers(files.key_packing, rows)
            if version is not None:
                new_rows = [(us(r[1]), us(r[2])) for r in batch]
                fitted = _fits(before, new_rows)
                # One properties commit (widened packing and/or risen tie level, together) only when needed.
                assert new_version - version == (1 if fitted and files.tie_level == level else 2)
                if fitted:
                    assert files.key_packing == before
            version, before, level = new_version, files.key_packing, files.tie_level
        evs = [r.event_ts for r in oracle_rows]
        pool = evs + [min(evs) - US, max(evs) + US, T0 + timedelta(days=365 * 300), datetime(1900, 1, 1, tzinfo=UTC)]
        pool += [e + d for e in evs for d in (US, -US, timedelta(seconds=5))]
        ents = [(ent_seed.randint(0, 3), ent_seed.choice(pool)) for _ in range(30)]
        job = check_oracle(store, oracle_rows, ents, ttl, scan_allowed=False)
        if files.tie_level == EVENT_TIES:
            assert ("HUGEINT" in job._plan.per_view[0]) == (files.key_packing is None)


def _fits(p: KeyPacking | None, rows) -> bool:
    if p is None:
        return True  # "none" is final: nothing to widen
    try:
        assert_covers(p, rows)
        return True
    except AssertionError:
        return False


def _config(store) -> dict:
    return DeltaTable(store.offline._uri("v")).metadata().configuration


SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)


def _batch(start: datetime, n: int, delay: timedelta, step: timedelta = SECOND, x0: int = 0):
    # two rows per key and event, created apart: ties on event time (level 1) that created time decides
    return [(k, start + step * i, start + step * i + delay + SECOND * j, x0 + 10 * i + j)
            for i in range(n) for k in range(2) for j in (0, 1)][:2 * n]


def test_ingests_that_fit_add_one_version_and_leave_the_property_alone(tmp_path):
    store = make_store(str(tmp_path))
    store.ingest("v", frame(_batch(T0, 50, 5 * SECOND)))
    assert store.offline.version("v") == 1  # version 0 and its follow-up carrying tie level and packing
    recorded = _config(store)[KEY_PACKING]
    assert _config(store)[TIE_LEVEL] == str(EVENT_TIES)
    for day in range(1, 15):  # later days, delays (4..9 s) in the room left around those seen (5..6 s)
        store.ingest("v", frame(_batch(T0 + timedelta(days=day), 50, (4 + day % 4) * SECOND, x0=day * 1000)))
        assert store.offline.version("v") == 1 + day
        assert _config(store)[KEY_PACKING] == recorded


@pytest.mark.parametrize("why, batch", [
    ("an event before the recorded range", _batch(T0 - timedelta(days=800), 10, 5 * SECOND)),
    ("events finer than seconds", _batch(T0 + HOUR, 10, 5 * SECOND, step=timedelta(milliseconds=1))),
    ("a much larger delay", _batch(T0 + HOUR, 10, timedelta(days=30))),
    ("a created time well before the event", _batch(T0 + HOUR, 10, -timedelta(days=2))),
    ("delays finer than seconds", _batch(T0 + HOUR, 10, timedelta(microseconds=5))),
])
def test_a_batch_that_does_not_fit_widens_the_packing_first(tmp_path, why, batch):
    store = make_store(str(tmp_path))
    first = _batch(T0, 40, 5 * SECOND)
    store.ingest("v", frame(first))
    old = store.offline.files("v", 1).key_packing
    assert old is not None and not _fits(old, [(us(r[1]), us(r[2])) for r in batch]), why
    store.ingest("v", frame(batch))
    assert store.offline.version("v") == 3  # the widened packing (version 2), then the append (version 3)
    at2, at3 = store.offline.files("v", 2), store.offline.files("v", 3)
    assert at2.key_packing == at3.key_packing != old and at2.uris == store.offline.files("v", 1).uris
    assert_covers(at3.key_packing, table_rows(store, 3))
    rows = [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]}) for b, bt in enumerate([first, batch])
            for i, r in enumerate(bt)]
    ents = [(r.key[0], r.event_ts + d) for r in rows for d in (-US, timedelta(0), US)] + [(0, T0 + HOUR * 10**5)]
    check_oracle(store, rows, ents, None, scan_allowed=False)
    store.ingest("v", frame([(5, *r[1:]) for r in batch[:2]]))  # the same times for a new key: they fit now
    assert store.offline.version("v") == 4


def test_rows_no_packing_fits_record_none_for_good(tmp_path):
    store = make_store(str(tmp_path))
    wide = [(0, T0, T0 + timedelta(days=365 * 40), 1), (0, T0, T0 - timedelta(days=365 * 40), 2),
            (0, T0 + timedelta(days=365 * 200) + US, T0, 3), (1, T0 - timedelta(days=365 * 100), T0, 4)]
    store.ingest("v", frame(wide))
    assert _config(store)[KEY_PACKING] == "none"
    files = store.offline.files("v", 1)
    assert files.key_packing_known and files.key_packing is None and files.tie_level == EVENT_TIES
    store.ingest("v", frame([(2, T0, T0, 5)]))
    assert store.offline.version("v") == 2 and _config(store)[KEY_PACKING] == "none"
    rows = [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]})
            for b, bt in enumerate([wide, [(2, T0, T0, 5)]]) for i, r in enumerate(bt)]
    ents = [(0, T0), (0, T0 + timedelta(days=365 * 201)), (1, T0), (0, T0 - US), (2, T0)]
    job = check_oracle(store, rows, ents, None, scan_allowed=False)
    assert "HUGEINT" in job._plan.per_view[0]


def test_probe_is_capped_at_the_capacity(tmp_path):
    """Microsecond events over a millisecond and delays over about a year: few event bits are left, so entity times
    an hour later are past the packing's capacity, where the probe is capped."""
    store = make_store(str(tmp_path))
    batch = [(0, T0 + US * i, T0 + US * i + timedelta(days=i * 40) + US * i, i) for i in range(10)]
    batch += [(0, T0 + US * i, T0 + US * i - timedelta(days=1), 100 + i) for i in range(10)]
    store.ingest("v", frame(batch))
    p = store.offline.files("v", 1).key_packing
    assert p is not None and p.event_min + p.event_steps * p.event_step < us(T0 + HOUR)
    rows = [oracle.Row((r[0],), r[1], r[2], (0, i), {"x": r[3]}) for i, r in enumerate(batch)]
    ents = [(0, T0 + HOUR), (0, T0 + timedelta(days=10**5)), (0, T0 + US * 4), (0, T0 - US)]
    check_oracle(store, rows, ents, None, scan_allowed=False)


def _old_style_table(store: sk.FeatureStore, batch) -> list:
    """A history as written before the packing was recorded: version 0, then its tie level, no packing."""
    view = store._registry_state(fresh=True).get("feature_view", "v")
    table = ingest_mod.prepare(view, frame(batch), batch=1, write_time=datetime.now(UTC))
    write_deltalake(store.offline._uri("v"), table)
    DeltaTable(store.offline._uri("v")).alter.set_table_properties({TIE_LEVEL: str(EVENT_TIES)}, raise_if_not_exists=False)
    return [oracle.Row((r[0],), r[1], r[2], (0, i), {"x": r[3]}) for i, r in enumerate(batch)]


def test_history_without_the_property_falls_back_to_the_scan_and_the_next_ingest_records_it(tmp_path):
    store = make_store(str(tmp_path))
    old = _batch(T0, 20, 3 * SECOND)
    rows = _old_style_table(store, old)
    files = store.offline.files("v", 1)
    assert files.tie_level == EVENT_TIES and not files.key_packing_known
    ents = [(r.key[0], r.event_ts + d) for r in rows for d in (-US, US)]
    with pytest.raises(AssertionError, match="ran the packing stats scan"):
        check_oracle(store, rows, ents, None, scan_allowed=False)  # it does scan ...
    job = check_oracle(store, rows, ents, None, scan_allowed=True)  # ... and packs what the scan found
    assert "HUGEINT" not in job._plan.per_view[0]
    new = _batch(T0 + HOUR, 5, 2 * SECOND, x0=500)
    store.ingest("v", frame(new))  # the prior history is scanned once and the packing recorded
    assert store.offline.version("v") == 3
    files = store.offline.files("v", 3)
    assert files.key_packing_known and files.key_packing is not None
    assert_covers(files.key_packing, table_rows(store, 3))
    rows += [oracle.Row((r[0],), r[1], r[2], (1, i), {"x": r[3]}) for i, r in enumerate(new)]
    check_oracle(store, rows, ents + [(0, T0 + 2 * HOUR)], None, scan_allowed=False)


def test_a_property_value_it_cannot_read_means_unknown(tmp_path):
    store = make_store(str(tmp_path))
    store.ingest("v", frame(_batch(T0, 5, SECOND)))
    for bad in ("v1:garbage", "v1:1:1000000:0:1:4", "v1:0:7:0:1:4", "v1:0:1:0:1:63", "v9:0:1:0:1:4"):
        DeltaTable(store.offline._uri("v")).alter.set_table_properties({KEY_PACKING: bad}, raise_if_not_exists=False)
        files = store.offline.files("v", store.offline.version("v"))
        assert not files.key_packing_known, bad


def test_an_empty_first_append_records_nothing_rather_than_none(tmp_path):
    from skewless.offline.delta import DeltaOfflineStore

    ts = pa.timestamp("us", "UTC")
    empty = pa.table({"k": pa.array([], pa.int64()), "event_timestamp": pa.array([], ts),
                      "created_timestamp": pa.array([], ts), "_skewless_batch": pa.array([], pa.int64()),
                      "_skewless_row": pa.array([], pa.int64())})
    offline = DeltaOfflineStore(str(tmp_path))
    offline.append("v", empty, batch=1, tie_check=lambda new, prior: 0)
    files = offline.files("v", offline.version("v"))
    assert files.tie_level == 0 and not files.key_packing_known  # unknown: the next ingest records it


def test_full_ties_stop_keeping_the_packing_and_never_hand_it_out(tmp_path):
    store = make_store(str(tmp_path))
    store.ingest("v", frame(_batch(T0, 5, SECOND)))
    assert store.offline.files("v", 1).key_packing_known
    store.ingest("v", frame([(0, T0, T0 + SECOND, 9)]))  # same key, event and created as a row already there
    files = store.offline.files("v", store.offline.version("v"))
    assert files.tie_level == FULL_TIES and not files.key_packing_known
    store.ingest("v", frame(_batch(T0 - timedelta(days=900), 5, timedelta(days=3))))  # no widening commit now
    assert store.offline.version("v") == files.version + 1


def test_concurrent_ingests_keep_every_version_covered(tmp_path):
    """Writers racing to append batches that each need a different widening: every version's packing covers that
    version's rows, nothing is lost, and retrieval at the end equals the oracle."""
    store = make_store(str(tmp_path))
    first = _batch(T0, 10, SECOND)
    store.ingest("v", frame(first))
    batches = [_batch(T0 - timedelta(days=700), 4, SECOND, x0=100),
               _batch(T0 + HOUR, 4, SECOND, step=timedelta(milliseconds=3), x0=200),
               _batch(T0 + 2 * HOUR, 4, timedelta(days=9), x0=300),
               _batch(T0 + 3 * HOUR, 4, -timedelta(hours=5), x0=400),
               _batch(T0 + 4 * HOUR, 4, 2 * SECOND, x0=500)]
    barrier, errors = threading.Barrier(len(batches)), []

    def ingest(batch):
        writer = sk.FeatureStore(store.config.repo_path)
        barrier.wait()
        try:
            writer.ingest("v", frame(batch))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
    threads = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    last = store.offline.version("v")
    for v in range(1, last + 1):
        files = store.offline.files("v", v)
        assert files.key_packing_known and files.key_packing is not None
        assert_covers(files.key_packing, table_rows(store, v))
    assert len(table_rows(store, last)) == sum(len(b) for b in [first] + batches)
    rows = [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]}) for b, bt in enumerate([first] + batches)
            for i, r in enumerate(bt)]
    ents = [(r.key[0], r.event_ts + d) for r in rows for d in (-US, timedelta(0), US)]
    check_oracle(store, rows, ents, None, scan_allowed=False)


@pytest.mark.parametrize("kind", ["s3", "oss"])
def test_on_object_stores_the_packing_is_recorded_widened_and_used(request, tmp_path, kind):
    """The same through S3 (moto) and OSS (the shim): the follow-up and properties commits go through each store's
    own commit path, and the widening scan reads the prior history through the store's filesystem."""
    from tests.support.object_store import object_store_repo

    cloud, moto = request.getfixturevalue("local_cloud"), request.getfixturevalue("moto_endpoint")
    if kind == "s3":
        bucket, options = "skewless-tests", {"endpoint_url": moto, "region": "us-east-1", "access_key_id": "test",
                                             "secret_access_key": "test"}
    else:
        bucket, options = "skewless-oss-tests", {"endpoint": request.getfixturevalue("oss_endpoint"),
                                                 "region": "cn-hangzhou", "access_key_id": "test",
                                                 "access_key_secret": "test"}
    cloud.ensure_bucket(bucket, moto)
    store = object_store_repo(tmp_path, f"{kind}://{bucket}", options, "kp")
    e = sk.Entity("e", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])])
    first, later = _batch(T0, 10, SECOND), _batch(T0 - timedelta(days=900), 4, timedelta(days=3), x0=100)
    store.ingest("v", frame(first))
    at1 = store.offline.files("v", 1)
    assert at1.key_packing_known and at1.key_packing is not None
    store.ingest("v", frame(later))  # earlier events and longer delays: widened first
    assert store.offline.version("v") == 3
    at3 = store.offline.files("v", 3)
    assert at3.key_packing_known and at3.key_packing not in (None, at1.key_packing)
    assert all(_fits(at3.key_packing, [(us(r[1]), us(r[2]))]) for r in first + later)
    rows = [oracle.Row((r[0],), r[1], r[2], (b, i), {"x": r[3]}) for b, bt in enumerate([first, later])
            for i, r in enumerate(bt)]
    ents = [(r.key[0], r.event_ts + d) for r in rows for d in (-US, US)]
    check_oracle(store, rows, ents, None, scan_allowed=False)
