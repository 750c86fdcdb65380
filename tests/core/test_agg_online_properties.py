"""Property: an aggregated view's online values (SQLite tiles) equal the spec oracle at any ``now`` after any
sequence of ingests (ties, late and future-dated rows, corrections by event_id, nulls, NaN, events on hop
boundaries, replays) and materializations (from scratch after the tiles are dropped, or over a range).

Reads are at ``now >= the last write time`` (the repo's clock, which ingest and materialize use as write time): the
invariant of transformations.md. Scale with ``SKEWLESS_PROPERTY_EXAMPLES=<n>``.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from tests.support.agg_online import SCHEMA, T0, AggRepo, every_function

import skewless as sk
from skewless.online.sqlite import SQLiteOnlineStore

EXAMPLES = int(os.environ.get("SKEWLESS_PROPERTY_EXAMPLES", "0")) or 25
MIN = timedelta(minutes=1)
HOP = 30 * MIN
CLOCK0 = T0 + timedelta(days=3)

# offsets from CLOCK0 in minutes: mostly the past 3 days, some future rows, many exactly on hop boundaries
offset = st.one_of(st.integers(-3 * 24 * 60, 6 * 60), st.integers(-144, 12).map(lambda i: i * 30),
                   st.sampled_from([-1, 0, 1, 29, 30, 31]))
amount = st.one_of(st.none(), st.just(math.nan), st.integers(-50, 50).map(float), st.floats(-1e3, 1e3, width=32))
row = st.fixed_dictionaries({
    "card": st.integers(1, 3), "ev": offset, "amount": amount, "qty": st.one_of(st.none(), st.integers(-10**6, 10**6)),
    "merchant": st.one_of(st.none(), st.sampled_from(["a", "b", "é", "zz"])), "paid": st.one_of(st.none(), offset),
    "txn": st.one_of(st.none(), st.sampled_from(["t1", "t2", "t3", "t4"])),
    "cr": st.one_of(st.none(), st.integers(-60, 60))})
step = st.one_of(
    st.tuples(st.just("ingest"), st.lists(row, min_size=1, max_size=8), st.integers(0, 180)),
    st.tuples(st.just("replay"), st.just(None), st.integers(0, 30)),
    st.tuples(st.just("rematerialize"), st.just(None), st.integers(0, 30)))


def _records(rows, clock):
    out = []
    for r in rows:
        rec = {**r, "ev": CLOCK0 + r["ev"] * MIN, "paid": None if r["paid"] is None else CLOCK0 + r["paid"] * MIN}
        rec["cr"] = clock if r["cr"] is None else clock + r["cr"] * MIN  # ties on created time are common
        out.append(rec)
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=os.environ.get("CI") == "true", print_blob=True)
@given(steps=st.lists(step, min_size=1, max_size=5), reads=st.lists(st.integers(0, 3 * 24 * 60), min_size=1,
                                                                      max_size=4),
       windows=st.lists(st.sampled_from([1, 2, 3, 5, 48, 200]), min_size=1, max_size=3, unique=True))
def test_online_aggregations_equal_the_oracle(steps, reads, windows):
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteOnlineStore(str(Path(d) / "online.db"))
        view = sk.AggregatedView("txn", [sk.Entity("card", ["card"], dtype=sk.Int64)], SCHEMA,
                                 every_function([HOP * w for w in windows]), hop=HOP, event_id="txn")
        repo = AggRepo(Path(d) / "repo", store, view, clock=CLOCK0)
        last = None
        for kind, rows, advance in steps:
            repo.clock += advance * MIN
            note(f"{kind} at {repo.clock}: {rows}")
            if kind == "ingest":
                last = _records(rows, repo.clock)
                repo.ingest(last)
            elif kind == "replay" and last is not None:
                repo.ingest(last)  # the same rows again: their event ids make them versions, never new events
            elif kind == "rematerialize":
                store.drop_view(view.name)
                repo.fs.materialize(T0, repo.clock + timedelta(days=1))
        nows = sorted({repo.clock + m * MIN for m in reads} | {repo.clock})
        repo.check([1, 2, 3], nows)
        store.close()
