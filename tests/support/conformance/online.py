"""OnlineStoreConformance: every online store (SQLite, Redis, Tair, ...) must pass this.

Subclass it and define a ``store`` fixture yielding a fresh, empty store. ``AggregationInvariant`` (the
aggregated views' cases, which it inherits) also runs on its own with another offline engine (MaxCompute).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import math

import pyarrow as pa
import pytest
from tests.support.agg_online import T0 as AT0
from tests.support.agg_online import D, H, AggRepo, around

import skewless as sk
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from skewless.online.base import EXPIRED, NOT_FOUND, PRESENT, to_us

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ALL_TYPES = [sk.Field("i32", sk.Int32), sk.Field("i64", sk.Int64), sk.Field("f32", sk.Float32),
             sk.Field("f64", sk.Float64), sk.Field("s", sk.String), sk.Field("b", sk.Bool),
             sk.Field("by", sk.Bytes), sk.Field("ts", sk.UnixTimestamp)]


def wall_now() -> datetime:
    """The real clock (stores that evict compare TTLs with it)."""
    return datetime.now(UTC)


def view(name="v", ttl=None, keys=("k",), key_dtype=sk.Int64, fields=None):
    ent = sk.Entity(f"{name}_ent", join_keys=list(keys))
    schema = [sk.Field(k, key_dtype) for k in keys] + (fields or [sk.Field("x", sk.Float64), sk.Field("y", sk.String)])
    return sk.FeatureView(name, entities=[ent], schema=schema, ttl=ttl)


def rows(v: sk.FeatureView, data: list[dict]) -> pa.Table:
    """data: dicts with keys, ev (datetime), cr (datetime, default ev), wb (batch), wr (row), and feature values."""
    cols = {k: pa.array([d[k] for d in data], v.join_key_dtypes[k].arrow) for k in v.join_keys}
    ts = pa.timestamp("us", tz="UTC")
    cols[EVENT_TS] = pa.array([d["ev"] for d in data], ts)
    cols[CREATED_TS] = pa.array([d.get("cr", d["ev"]) for d in data], ts)
    cols[WRITE_BATCH] = pa.array([d.get("wb", 1) for d in data], pa.int64())
    cols[WRITE_ROW] = pa.array([d.get("wr", i) for i, d in enumerate(data)], pa.int64())
    for f in v.features:
        cols[f.name] = pa.array([d.get(f.name) for d in data], f.dtype.arrow)
    return pa.table(cols)


class AggregationInvariant:
    """The online invariant of aggregated views (online == offline at ``t = now``), after ingest, a late event, a
    correction by event_id, a replay and a materialize backfill. Needs a ``store`` fixture (the online store under
    test); ``agg_repo`` builds the repo around it (subclasses pick another offline store and engine)."""

    def agg_repo(self, store, tmp_path, **kw) -> AggRepo:
        if not store.supports_tiles:
            pytest.skip("store keeps no aggregation tiles (supports_tiles)")
        return AggRepo(tmp_path / "repo", store, **kw)

    @staticmethod
    def txns(start: datetime, card: int, n: int, tag: str, step=timedelta(hours=5)) -> list[dict]:
        """n events of ``card`` from ``start``, ``step`` apart: nulls, a NaN, repeated merchants, txn ids."""
        out = []
        for i in range(n):
            amount = None if i % 7 == 3 else math.nan if (i == 5 and card == 2) else round(1.5 * i - 4.25, 2)
            out.append({"card": card, "ev": start + step * i, "amount": amount, "qty": None if i % 5 == 4 else i * 3,
                        "merchant": None if i % 4 == 1 else f"m{(i * 7) % 5}", "paid": start + step * i - H,
                        "txn": None if i % 6 == 5 else f"{tag}{card}-{i}"})
        return out

    def test_aggregations_equal_offline_after_ingest_late_event_correction_and_replay(self, store, tmp_path):
        r = self.agg_repo(store, tmp_path)
        cards = [1, 2, 3]  # 3 never has an event
        r.clock = AT0 + 12 * D
        first = self.txns(AT0, 1, 40, "a") + self.txns(AT0 + timedelta(minutes=30), 2, 50, "a")
        r.ingest(first, batch_id="first")
        last_ev = max(e["ev"] for e in first)
        r.check(cards, around(r.clock, r.clock + timedelta(minutes=59), r.clock + 3 * D, r.clock + 8 * D))
        # a late event lands in an old tile (every window holding it changes)
        r.clock += H
        r.ingest([{"card": 1, "ev": AT0 + 6 * D + timedelta(minutes=7), "amount": 100.0, "qty": 9, "merchant": "late",
                   "paid": AT0, "txn": "late-1"}])
        r.check(cards, around(r.clock, r.clock + 2 * D, AT0 + 13 * D + timedelta(hours=6)))
        # corrections by event_id: a new value and a new time; the earlier version stops counting entirely
        r.clock += H
        r.ingest([{"card": 1, "ev": AT0 + 12 * D + timedelta(minutes=10), "amount": -7.5, "qty": 1, "merchant": "fix",
                   "paid": AT0 + D, "txn": "a1-3"},
                  {"card": 2, "ev": AT0 + 2 * D, "amount": 2.0, "qty": 2, "merchant": "fix", "txn": "a2-10"}])
        r.check(cards, around(r.clock, r.clock + 5 * H, r.clock + 7 * D))
        # a replayed batch never counts twice: by batch id, and re-sent events with the same event ids
        assert r.ingest(first, batch_id="first").already_ingested
        r.clock += H
        r.ingest(self.txns(AT0, 1, 10, "a"))
        r.check(cards, around(r.clock, r.clock + 2 * D))
        assert last_ev < r.clock

    def test_aggregations_future_dated_rows_never_count_before_their_time(self, store, tmp_path):
        r = self.agg_repo(store, tmp_path)
        r.clock = AT0 + 3 * D + timedelta(minutes=20)
        future = [{"card": 1, "ev": r.clock + timedelta(minutes=m), "amount": float(m), "qty": m, "merchant": f"f{m}",
                   "paid": r.clock, "txn": f"f{m}"} for m in (1, 15, 39, 40, 41, 100, 60 * 30)]
        r.ingest(self.txns(AT0, 1, 15, "a") + future)
        nows = around(r.clock, *(e["ev"] for e in future))
        r.check([1, 2], nows)
        # a later write into the tile holding future rows keeps them out until their time as well
        r.clock += timedelta(minutes=10)
        r.ingest([{"card": 1, "ev": r.clock - timedelta(minutes=1), "amount": 0.5, "qty": 1, "txn": "now-1"}])
        r.check([1], [n for n in nows if n >= r.clock])

    def test_aggregations_after_materialize_backfill_equal_offline(self, store, tmp_path):
        r = self.agg_repo(store, tmp_path)
        r.clock = AT0 + 20 * D
        r.ingest(self.txns(AT0, 1, 60, "a") + self.txns(AT0, 2, 30, "a", step=timedelta(hours=13)))
        r.ingest([{"card": 1, "ev": AT0 + 3 * D, "amount": 5.0, "qty": 5, "txn": "a1-2"}])  # a correction
        store.drop_view(r.view.name)  # the tiles are gone: materialize rebuilds them from the history
        assert r.fs.get_online_features([f"{r.view.name}:count_365d"], [{"card": 1}], now=r.clock).values == \
            {"count_365d": [0]}
        r.fs.materialize(AT0, AT0 + 10 * D)
        r.fs.materialize_incremental(AT0 + 30 * D)
        r.check([1, 2, 3], around(r.clock, r.clock + 4 * D))
        # materializing again changes nothing
        r.fs.materialize(AT0, AT0 + 30 * D)
        r.check([1, 2], [r.clock])


class OnlineStoreConformance(AggregationInvariant):
    @pytest.fixture
    def store(self):  # pragma: no cover - subclasses provide it
        raise NotImplementedError

    def read1(self, store, v, keys, now, feats=None):
        feats = feats or v.feature_names
        return store.read([(v, feats, [tuple(k) if isinstance(k, tuple) else (k,) for k in keys])], now)[0]

    def test_write_then_read_returns_values_timestamps_and_status(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.5, "y": "a"}, {"k": 2, "ev": T0 + timedelta(hours=1),
                                                                         "x": None, "y": "b"}]))
        r = self.read1(store, v, [1, 2, 3], T0 + timedelta(days=1))
        assert r.values == [[1.5, "a"], [None, "b"], [None, None]]
        assert r.statuses == [PRESENT, PRESENT, NOT_FOUND]
        assert r.event_timestamps == [T0, T0 + timedelta(hours=1), None]

    def test_late_event_never_overwrites_newer(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(hours=2), "x": 2.0}]))
        store.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(hours=1), "x": 1.0, "wb": 99}]))
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values == [[2.0, None]]

    def test_ties_break_on_created_then_write_order(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0, "cr": T0 + timedelta(hours=5), "x": 1.0, "wb": 1}]))
        store.write(v, rows(v, [{"k": 1, "ev": T0, "cr": T0 + timedelta(hours=4), "x": 2.0, "wb": 2}]))
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values[0][0] == 1.0
        store.write(v, rows(v, [{"k": 1, "ev": T0, "cr": T0 + timedelta(hours=5), "x": 3.0, "wb": 0}]))
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values[0][0] == 1.0  # lower batch loses
        store.write(v, rows(v, [{"k": 1, "ev": T0, "cr": T0 + timedelta(hours=5), "x": 4.0, "wb": 1, "wr": 7}]))
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values[0][0] == 4.0  # same batch, later row
        # within one write, the later row of the same key wins
        store.write(v, rows(v, [{"k": 2, "ev": T0, "x": 5.0, "wb": 3, "wr": 0}, {"k": 2, "ev": T0, "x": 6.0, "wb": 3,
                                                                             "wr": 1}]))
        assert self.read1(store, v, [2], T0 + timedelta(days=1)).values[0][0] == 6.0

    def test_newer_row_with_null_clears_the_older_value(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0, "y": "a"}]))
        store.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(hours=1), "x": None, "y": "b"}]))
        r = self.read1(store, v, [1], T0 + timedelta(days=1))
        assert r.values == [[None, "b"]] and r.statuses == [PRESENT]

    def test_large_write_keeps_each_keys_newest_row_wherever_it_sits(self, store):
        """A write of many rows (stores that send them in groups: several statements or pipelines, and a last
        partial one) where each key's rows are scattered over the write in shuffled order, newer and older mixed,
        on top of a stored row that some keys' new rows are older than: each key ends with its greatest
        (event, created, batch, row) — the same as writing the rows one at a time."""
        import random

        v = view()
        rnd = random.Random(7)
        keys = 130
        stored = {k: T0 + timedelta(hours=95 if k % 3 == 0 else 0) for k in range(keys)}  # batch 4: older batch
        store.write(v, rows(v, [{"k": k, "ev": ev, "x": -1.0, "wb": 4} for k, ev in stored.items()]))
        data = [{"k": rnd.randrange(keys), "ev": T0 + timedelta(hours=rnd.randrange(100)), "x": float(i), "wb": 5}
                for i in range(1_037)]
        rnd.shuffle(data)
        for i, d in enumerate(data):
            d["wr"] = i  # equal events of one key: the later row of the write wins
        store.write(v, rows(v, data))
        want = {k: (ev, -1, -1.0) for k, ev in stored.items()}  # (event, write row, x); batch 5 beats batch 4
        for d in data:
            if (d["ev"], d["wr"]) > want[d["k"]][:2]:
                want[d["k"]] = (d["ev"], d["wr"], d["x"])
        got = self.read1(store, v, list(range(keys)), T0 + timedelta(days=30))
        assert [x[0] for x in got.values] == [want[k][2] for k in range(keys)]
        assert sum(w[2] == -1.0 for w in want.values()) > 0  # some keys kept their stored (newer) row

    def test_large_write_with_constant_order_columns_keeps_newest_wins(self, store):
        """A write whose created time and write batch are the same in every row (an ingest's rows: one batch, the
        created time filled in; stores may send such a column once per group of rows) on top of stored rows of a
        higher batch for some keys and a lower one for others, with equal event and created times: each key ends
        with its greatest (event, created, batch, row), as when the rows are written one at a time."""
        import random

        v = view()
        rnd = random.Random(11)
        keys, created = 130, T0 + timedelta(days=3)
        stored = {k: (T0 + timedelta(hours=k % 5), 6 if k % 2 else 4) for k in range(keys)}  # (event, batch)
        store.write(v, rows(v, [{"k": k, "ev": ev, "cr": created, "x": -1.0, "wb": wb, "wr": 0}
                                for k, (ev, wb) in stored.items()]))
        data = [{"k": rnd.randrange(keys), "ev": T0 + timedelta(hours=rnd.randrange(5)), "cr": created,
                 "x": float(i), "wb": 5, "wr": i} for i in range(1_037)]
        store.write(v, rows(v, data))
        want = {k: ((ev, wb, 0), -1.0) for k, (ev, wb) in stored.items()}
        for d in data:
            if (d["ev"], 5, d["wr"]) > want[d["k"]][0]:
                want[d["k"]] = ((d["ev"], 5, d["wr"]), d["x"])
        got = self.read1(store, v, list(range(keys)), T0 + timedelta(days=30))
        assert [x[0] for x in got.values] == [want[k][1] for k in range(keys)]
        assert {w[1] == -1.0 for w in want.values()} == {True, False}  # stored rows both kept and replaced

    def test_staged_write_commits_its_meta_with_its_rows(self, store):
        """``stage_write(meta=)`` (an ingest's pending marker cleared with its push): the entries change at
        ``commit()``, with the rows, and not at all after ``abort()``."""
        v = view()
        store.set_meta("pending/v/1", "x")
        store.set_meta("pending/v/2", "y")
        staged = store.stage_write(v, lambda: iter([rows(v, [{"k": 1, "ev": T0, "x": 2.0}])]),
                                   {"pending/v/1": None, "other": "z"})
        assert store.get_meta("pending/v/1") == "x" and store.get_meta("other") is None
        assert staged.commit() == 1
        assert store.get_meta("pending/v/1") is None and store.get_meta("other") == "z"
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values == [[2.0, None]]
        dropped = store.stage_write(v, lambda: iter([rows(v, [{"k": 2, "ev": T0, "x": 3.0}])]), {"pending/v/2": None})
        dropped.abort()
        assert store.get_meta("pending/v/2") == "y"
        assert self.read1(store, v, [2], T0 + timedelta(days=1)).values == [[None, None]]

    def test_staged_write_is_visible_only_after_commit_and_never_after_abort(self, store):
        """``stage_write`` (an ingest's online push begun before its offline commit): reads see none of the rows
        until ``commit()``, which returns the rows offered; an aborted one leaves nothing, and the store takes
        writes again right after either."""
        v = view()
        now = T0 + timedelta(days=1)
        store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
        staged = store.stage_write(v, lambda: iter([rows(v, [{"k": 1, "ev": T0 + timedelta(hours=1), "x": 2.0}]),
                                                    rows(v, [{"k": 2, "ev": T0, "x": 3.0}])]))
        assert self.read1(store, v, [1, 2], now).values == [[1.0, None], [None, None]]
        assert staged.commit() == 2
        assert self.read1(store, v, [1, 2], now).values == [[2.0, None], [3.0, None]]
        dropped = store.stage_write(v, lambda: iter([rows(v, [{"k": 3, "ev": T0, "x": 4.0},
                                                              {"k": 1, "ev": T0 + timedelta(hours=2), "x": 5.0}])]))
        assert self.read1(store, v, [1, 3], now).values == [[2.0, None], [None, None]]
        dropped.abort()
        store.write(v, rows(v, [{"k": 4, "ev": T0, "x": 6.0}]))
        assert self.read1(store, v, [1, 3, 4], now).values == [[2.0, None], [None, None], [6.0, None]]

    def test_rewriting_same_rows_is_idempotent(self, store):
        v = view()
        data = rows(v, [{"k": i, "ev": T0 + timedelta(minutes=i), "x": float(i)} for i in range(50)])
        store.write(v, data)
        store.write(v, data)
        r = self.read1(store, v, list(range(50)), T0 + timedelta(days=1))
        assert [x[0] for x in r.values] == [float(i) for i in range(50)]

    def test_ttl_enforced_at_read_with_inclusive_boundary(self, store):
        # Times relative to the wall clock: a store that evicts expired keys (``evicts_expired``) still holds a
        # row written now when `now` is simulated at its TTL boundary, so the read-time TTL alone decides here.
        t = wall_now()
        v = view(ttl=timedelta(hours=1))
        store.write(v, rows(v, [{"k": 1, "ev": t, "x": 1.0}]))
        at_edge = self.read1(store, v, [1], t + timedelta(hours=1))
        assert at_edge.statuses == [PRESENT] and at_edge.values == [[1.0, None]]
        past = self.read1(store, v, [1], t + timedelta(hours=1, microseconds=1))
        assert past.statuses == [EXPIRED] and past.values == [[None, None]] and past.event_timestamps == [None]

    def test_evicting_store_drops_rows_past_their_ttl(self, store):
        if not store.evicts_expired:
            pytest.skip("store keeps expired rows (read-time TTL only)")
        t = wall_now()
        ttl = timedelta(hours=1)
        v = view("evict", ttl=ttl)
        gone = t - ttl - store.eviction_grace - timedelta(minutes=1)
        store.write(v, rows(v, [{"k": 1, "ev": gone, "x": 1.0}, {"k": 2, "ev": t, "x": 2.0}]))
        raw = store.read_raw([(v, ["x"], [(1,), (2,)])])[0]
        assert raw[0] is None and raw[1] == (to_us(t), [2.0])
        # a newer row of an evicted entity is stored again; an older one is not resurrected
        store.write(v, rows(v, [{"k": 1, "ev": t, "x": 3.0}]))
        store.write(v, rows(v, [{"k": 1, "ev": gone, "x": 4.0}]))
        assert self.read1(store, v, [1], t, ["x"]).values == [[3.0]]

    def test_batched_read_across_views_in_one_call(self, store):
        a, b = view("a"), view("b", fields=[sk.Field("z", sk.Int64)])
        store.write(a, rows(a, [{"k": 1, "ev": T0, "x": 1.0, "y": "one"}]))
        store.write(b, rows(b, [{"k": 1, "ev": T0, "z": 10}, {"k": 2, "ev": T0, "z": 20}]))
        ra, rb = store.read([(a, ["y"], [(1,), (2,)]), (b, ["z"], [(2,), (1,), (2,)])], T0 + timedelta(days=1))
        assert ra.values == [["one"], [None]] and ra.statuses == [PRESENT, NOT_FOUND]
        assert rb.values == [[20], [10], [20]]

    def test_composite_keys_and_string_keys(self, store):
        v = view("multi", keys=("ka", "kb"), key_dtype=sk.String)
        store.write(v, rows(v, [{"ka": "x", "kb": "1", "ev": T0, "x": 1.0}, {"ka": "x", "kb": "2", "ev": T0, "x": 2.0}]))
        r = store.read([(v, ["x"], [("x", "2"), ("x", "1"), ("y", "1")])], T0 + timedelta(days=1))[0]
        assert r.values == [[2.0], [1.0], [None]]

    def test_null_key_reads_not_found(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
        assert store.read([(v, ["x"], [(None,)])], T0 + timedelta(days=1))[0].statuses == [NOT_FOUND]

    def test_every_dtype_round_trips(self, store):
        v = view("types", fields=ALL_TYPES)
        vals = {"i32": -7, "i64": 2**40, "f32": 1.5, "f64": 0.1, "s": "é ü", "b": True, "by": b"\x00\xff",
                "ts": datetime(2023, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)}
        store.write(v, rows(v, [{"k": 1, "ev": T0, **vals}, {"k": 2, "ev": T0}]))
        r = self.read1(store, v, [1, 2], T0 + timedelta(days=1))
        assert dict(zip(v.feature_names, r.values[0])) == vals
        assert r.values[1] == [None] * len(vals) and r.statuses[1] == PRESENT

    def test_added_feature_reads_null_for_old_rows(self, store):
        v1 = view("evolve")
        store.write(v1, rows(v1, [{"k": 1, "ev": T0, "x": 1.0, "y": "a"}]))
        v2 = view("evolve", fields=[sk.Field("x", sk.Float64), sk.Field("y", sk.String), sk.Field("w", sk.Int64)])
        assert self.read1(store, v2, [1], T0 + timedelta(days=1)).values == [[1.0, "a", None]]
        store.write(v2, rows(v2, [{"k": 2, "ev": T0, "x": 2.0, "w": 5}]))
        assert self.read1(store, v2, [2], T0 + timedelta(days=1), ["w"]).values == [[5]]

    def test_unknown_view_reads_not_found(self, store):
        v = view("never_written")
        assert self.read1(store, v, [1], T0).statuses == [NOT_FOUND]

    def test_concurrent_writers_keep_the_newest(self, store):
        if not store.supports_concurrent_writers:
            pytest.skip("store does not support concurrent writers")
        v = view()
        store.write(v, rows(v, [{"k": 0, "ev": T0, "x": -1.0}]))

        def writer(i):
            store.write(v, rows(v, [{"k": k, "ev": T0 + timedelta(seconds=i), "x": float(i), "wb": i}
                                    for k in range(20)]))
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r = self.read1(store, v, list(range(20)), T0 + timedelta(days=1))
        assert all(x[0] == 7.0 for x in r.values)

    def test_meta_roundtrip_and_prefix_listing(self, store):
        store.set_meta("materialize/a", "1")
        store.set_meta("materialize/b", "2")
        store.set_meta("other", "3")
        assert store.get_meta("materialize/a") == "1"
        assert store.list_meta("materialize/") == {"materialize/a": "1", "materialize/b": "2"}
        store.set_meta("materialize/a", None)
        assert store.get_meta("materialize/a") is None

    def test_drop_view_forgets_values(self, store):
        v = view()
        store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
        store.drop_view("v")
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).statuses == [NOT_FOUND]

    # -- forget (skewless.forget): an entity's rows and tiles erased ------------------------------------------
    def test_delete_entities_erases_the_keys_rows_only_and_is_idempotent(self, store):
        v, other = view(), view("other")
        store.write(v, rows(v, [{"k": k, "ev": T0, "x": float(k)} for k in (1, 2, 3)]))
        store.write(other, rows(other, [{"k": 1, "ev": T0, "x": 9.0}]))
        assert store.delete_entities(v, ["k"], [(1,), (3,), (4,)]) == 2
        r = self.read1(store, v, [1, 2, 3], T0 + timedelta(days=1))
        assert r.statuses == [NOT_FOUND, PRESENT, NOT_FOUND] and r.values[1] == [2.0, None]
        assert self.read1(store, other, [1], T0 + timedelta(days=1)).values == [[9.0, None]]  # another view: kept
        assert store.delete_entities(v, ["k"], [(1,), (3,)]) == 0
        # a key forgotten can be written again (a new customer reusing an id): it is a fresh row
        store.write(v, rows(v, [{"k": 1, "ev": T0 - timedelta(days=1), "x": -1.0}]))
        assert self.read1(store, v, [1], T0 + timedelta(days=1)).values == [[-1.0, None]]

    def test_delete_entities_by_one_entity_of_a_composite_key(self, store):
        v = view("pair", keys=("ka", "kb"), key_dtype=sk.String)
        store.write(v, rows(v, [{"ka": "x", "kb": "1", "ev": T0, "x": 1.0}, {"ka": "x", "kb": "2", "ev": T0, "x": 2.0},
                                {"ka": "y", "kb": "1", "ev": T0, "x": 3.0}, {"ka": "1", "kb": "x", "ev": T0, "x": 4.0}]))
        assert store.delete_entities(v, ["ka"], [("x",)]) == 2
        r = store.read([(v, ["x"], [("x", "1"), ("x", "2"), ("y", "1"), ("1", "x")])], T0 + timedelta(days=1))[0]
        assert r.values == [[None], [None], [3.0], [4.0]]
        assert store.delete_entities(v, ["kb"], [("1",)]) == 1  # the second key: only y/1 is left with kb = 1
        r = store.read([(v, ["x"], [("y", "1"), ("1", "x")])], T0 + timedelta(days=1))[0]
        assert r.values == [[None], [4.0]]

    def test_delete_entities_erases_aggregation_tiles(self, store, tmp_path):
        r = self.agg_repo(store, tmp_path)
        r.clock = AT0 + 12 * D
        r.ingest(self.txns(AT0, 1, 20, "a") + self.txns(AT0, 2, 20, "a"))
        refs = [f"{r.view.name}:count_365d"]
        assert r.fs.get_online_features(refs, [{"card": 1}, {"card": 2}], now=r.clock).values == \
            {"count_365d": [20, 20]}
        assert store.delete_entities(r.view, ["card"], [(1,)]) == 1
        assert r.fs.get_online_features(refs, [{"card": 1}, {"card": 2}], now=r.clock).values == \
            {"count_365d": [0, 20]}
