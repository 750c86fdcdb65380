"""OfflineConformance: every offline store + engine pair (local Delta + DuckDB, S3, OSS, MaxCompute, ...) must pass.

Subclass it and define a ``feature_store`` fixture yielding a FeatureStore whose offline store and engine are the
backend under test (the online store may be anything). Expected values come from the spec oracle."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from tests.support import oracle
from tests.support.conformance.offline_agg import AggregationConformance
from tests.support.conformance.offline_labels import LabelsConformance
import skewless as sk
from skewless import ingest
from skewless.errors import ValidationError
from skewless.offline.base import FULL_TIES, BatchAlreadyCommitted
from skewless.offline.key_packing import covers, packing_stats_arrow

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def H(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def define(store, ttl=None, name="v"):
    ent = sk.Entity("ent", join_keys=["k"])
    v = sk.FeatureView(name, entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64),
                                                     sk.Field("s", sk.String)], ttl=ttl)
    store.apply([ent, v])
    return v


def frame(rows):
    return pd.DataFrame(rows, columns=["k", "event_timestamp", "created_timestamp", "x", "s"])


class OfflineConformance(AggregationConformance, LabelsConformance):
    @pytest.fixture
    def feature_store(self, tmp_path):  # pragma: no cover
        raise NotImplementedError

    def _oracle_rows(self, batches):
        out = []
        for b, rows in enumerate(batches):
            for i, (k, ev, cr, x, s) in enumerate(rows):
                out.append(oracle.Row((k,), ev, cr, (b, i), {"x": x, "s": s}))
        return out

    def _check(self, store, batches, ttl, entity_rows, point_in_time="event", oracle_batches=None):
        for rows in batches:
            store.ingest("v", frame(rows))
        batches = oracle_batches if oracle_batches is not None else batches
        got = store.get_historical_features(pd.DataFrame(entity_rows), ["v:x", "v:s"],
                                            point_in_time=point_in_time).to_pandas()
        want = oracle.training_set({"v": (["k"], ttl, self._oracle_rows(batches))}, entity_rows, ["v:x", "v:s"],
                                   point_in_time=point_in_time)
        assert len(got) == len(want)
        for i, w in enumerate(want):
            for c in ("x", "s"):
                g = got[c].iloc[i]
                g = None if pd.isna(g) else g
                assert g == w[c], f"row {i} column {c}: got {g!r}, want {w[c]!r} (entity {entity_rows[i]})"
        return got

    def test_ties_on_event_then_created_then_write_order(self, feature_store):
        define(feature_store)
        batches = [[(1, H(1), H(1), 1.0, "a"), (1, H(1), H(3), 2.0, "b"), (1, H(1), H(3), 3.0, "c")],
                   [(1, H(1), H(2), 4.0, "d"), (1, H(1), H(3), 5.0, "e")]]
        got = self._check(feature_store, batches, None, [{"k": 1, "event_timestamp": H(1)}])
        assert got["x"].iloc[0] == 5.0

    def test_full_ties_in_the_very_first_write(self, feature_store):
        define(feature_store)
        got = self._check(feature_store, [[(1, H(1), H(1), 1.0, "a"), (1, H(1), H(1), 2.0, "b")]], None,
                          [{"k": 1, "event_timestamp": H(1)}])
        assert got["x"].tolist() == [2.0]

    def test_ttl_bounds_are_inclusive(self, feature_store):
        define(feature_store, ttl=timedelta(hours=2))
        batches = [[(1, H(0), H(0), 1.0, "a")]]
        ents = [{"k": 1, "event_timestamp": H(2)}, {"k": 1, "event_timestamp": H(2) + timedelta(microseconds=1)},
                {"k": 1, "event_timestamp": H(0)}, {"k": 1, "event_timestamp": H(0) - timedelta(microseconds=1)}]
        got = self._check(feature_store, batches, timedelta(hours=2), ents)
        assert list(got["x"].isna()) == [False, True, False, True]

    def test_write_order_decides_only_full_ties_and_the_flag_tracks_them(self, feature_store):
        define(feature_store)
        self._check(feature_store, [[(1, H(1), H(1), 1.0, "a"), (1, H(2), H(1), 2.0, "b")]], None,
                    [{"k": 1, "event_timestamp": H(1)}, {"k": 1, "event_timestamp": H(3)}])
        files = feature_store.offline.files("v", feature_store.offline.version("v"))
        if hasattr(files, "tie_level"):
            assert files.tie_level == 0
        # event ties broken by created time only: no row needs the write order
        self._check(feature_store, [[(1, H(1), H(2), 1.0, "a"), (1, H(1), H(3), 2.0, "b"), (2, H(1), H(1), 3.0, "c")]],
                    None, [{"k": 1, "event_timestamp": H(1)}, {"k": 2, "event_timestamp": H(5)}],
                    oracle_batches=[[(1, H(1), H(1), 1.0, "a"), (1, H(2), H(1), 2.0, "b")],
                                    [(1, H(1), H(2), 1.0, "a"), (1, H(1), H(3), 2.0, "b"), (2, H(1), H(1), 3.0, "c")]])
        files = feature_store.offline.files("v", feature_store.offline.version("v"))
        if hasattr(files, "tie_level"):
            assert files.tie_level == 1
        # a later write repeating (key, event, created) must win through the write order
        batches = [[(1, H(1), H(1), 1.0, "a"), (1, H(2), H(1), 2.0, "b")],
                   [(1, H(1), H(2), 1.0, "a"), (1, H(1), H(3), 2.0, "b"), (2, H(1), H(1), 3.0, "c")],
                   [(1, H(1), H(3), 9.0, "z")]]
        feature_store.ingest("v", frame(batches[2]))
        got = self._check(feature_store, [], None, [{"k": 1, "event_timestamp": H(1)}], oracle_batches=batches)
        assert got["x"].tolist() == [9.0]
        files = feature_store.offline.files("v", feature_store.offline.version("v"))
        if hasattr(files, "tie_level"):
            assert files.tie_level == 2

    def test_late_and_future_rows(self, feature_store):
        define(feature_store)
        batches = [[(1, H(5), H(5), 5.0, "new")], [(1, H(1), H(6), 1.0, "late")], [(1, H(100), H(100), 9.0, "future")]]
        ents = [{"k": 1, "event_timestamp": H(2)}, {"k": 1, "event_timestamp": H(6)}]
        got = self._check(feature_store, batches, None, ents)
        assert list(got["s"]) == ["late", "new"]

    def test_available_excludes_backfilled_rows(self, feature_store):
        define(feature_store)
        batches = [[(1, H(1), H(1), 1.0, "a"), (1, H(2), H(10), 2.0, "backfill")]]
        ents = [{"k": 1, "event_timestamp": H(5)}, {"k": 1, "event_timestamp": H(10)}]
        ev = self._check(feature_store, batches, None, ents, "event")
        assert list(ev["s"]) == ["backfill", "backfill"]
        av = feature_store.get_historical_features(pd.DataFrame(ents), ["v:s"], point_in_time="available").to_pandas()
        assert list(av["s"]) == ["a", "backfill"]

    def test_input_rows_kept_in_order_with_duplicates_nulls_and_extra_columns(self, feature_store):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (2, H(1), H(1), 2.0, "b")]))
        ents = pd.DataFrame({"k": [2, 1, None, 2, 3], "event_timestamp": [H(2)] * 5, "label": [1, 0, 1, 1, 0],
                             "note": list("vwxyz")})
        got = feature_store.get_historical_features(ents, ["v:x"]).to_pandas()
        assert list(got.columns) == ["k", "event_timestamp", "label", "note", "x"]
        assert list(got["note"]) == list("vwxyz") and list(got["label"]) == [1, 0, 1, 1, 0]
        assert got["x"].tolist()[:2] == [2.0, 1.0] and got["x"].isna().tolist()[2:] == [True, False, True]

    def test_mixed_time_zones_are_the_same_instants(self, feature_store):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (1, H(3), H(3), 3.0, "c")]))
        plus2 = timezone(timedelta(hours=2))
        ents = pd.DataFrame({"k": [1, 1, 1], "event_timestamp": pd.Series(
            [H(2).astimezone(plus2), H(3).replace(tzinfo=None), "2024-01-01T04:00:00-02:00"], dtype=object)})
        got = feature_store.get_historical_features(ents, ["v:x"]).to_pandas()
        assert got["x"].tolist() == [1.0, 3.0, 3.0]

    def test_full_feature_names_and_collisions(self, feature_store):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
        ents = pd.DataFrame({"k": [1], "event_timestamp": [H(2)], "x": [0]})
        with pytest.raises(ValidationError, match="overwrite"):
            feature_store.get_historical_features(ents, ["v:x"]).to_pandas()
        got = feature_store.get_historical_features(ents, ["v:x"], full_feature_names=True).to_pandas()
        assert got["v__x"].tolist() == [1.0] and got["x"].tolist() == [0]

    def test_snapshot_rebuilds_identically_after_more_writes(self, feature_store):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
        ents = pd.DataFrame({"k": [1], "event_timestamp": [H(10)]})
        job = feature_store.get_historical_features(ents, ["v:x"])
        first = job.to_pandas()
        feature_store.ingest("v", frame([(1, H(2), H(2), 2.0, "b")]))
        assert feature_store.get_historical_features(ents, ["v:x"]).to_pandas()["x"].tolist() == [2.0]
        again = feature_store.get_historical_features(ents, ["v:x"], snapshot=job.snapshot).to_pandas()
        pd.testing.assert_frame_equal(first, again)

    def test_entity_rows_from_parquet_path(self, feature_store, tmp_path):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (2, H(1), H(1), 2.0, "b")]))
        path = tmp_path / "entities.parquet"
        pd.DataFrame({"k": [2, 1, 2], "event_timestamp": [H(2), H(0), H(2)]}).to_parquet(path)
        got = feature_store.get_historical_features(str(path), ["v:x"]).to_pandas()
        assert got["x"].tolist()[0] == 2.0 and pd.isna(got["x"].iloc[1]) and got["x"].iloc[2] == 2.0
        parts = tmp_path / "parts"
        parts.mkdir()
        for i, k in enumerate([[1, 2], [2], [1, 1, 2]]):  # input order = file order, then row order
            pd.DataFrame({"k": k, "event_timestamp": [H(2)] * len(k), "pos": range(len(k))}).to_parquet(
                parts / f"part-{i}.parquet")
        got = feature_store.get_historical_features(str(parts / "*.parquet"), ["v:x"]).to_pandas()
        assert got["x"].tolist() == [1.0, 2.0, 2.0, 1.0, 1.0, 2.0] and got["pos"].tolist() == [0, 1, 0, 0, 1, 2]
        assert feature_store.get_historical_features(str(parts), ["v:x"]).to_pandas()["x"].tolist() == \
            [1.0, 2.0, 2.0, 1.0, 1.0, 2.0]
        with pytest.raises(ValidationError, match="no Parquet file"):
            feature_store.get_historical_features(str(tmp_path / "missing.parquet"), ["v:x"])

    def test_added_feature_reads_null_for_older_rows_and_old_snapshots_still_read(self, feature_store):
        v = define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
        ents = pd.DataFrame({"k": [1, 2], "event_timestamp": [H(3), H(3)]})
        old = feature_store.get_historical_features(ents, ["v:x"])
        before = old.to_pandas()
        grown = sk.FeatureView("v", entities=[sk.Entity("ent", join_keys=["k"])],
                               schema=v.schema + [sk.Field("n", sk.Int64)])
        feature_store.apply([grown])
        feature_store.ingest("v", pd.DataFrame({"k": [2], "event_timestamp": [H(2)], "x": [2.0], "s": ["b"],
                                                "n": [7]}))
        got = feature_store.get_historical_features(ents, ["v:x", "v:n"]).to_pandas()
        assert got["x"].tolist() == [1.0, 2.0]
        assert pd.isna(got["n"].iloc[0]) and got["n"].iloc[1] == 7
        again = feature_store.get_historical_features(ents, ["v:x"], snapshot=old.snapshot).to_pandas()
        pd.testing.assert_frame_equal(before, again)

    def test_nanosecond_entity_times_are_floored_never_rounded_up(self, feature_store, tmp_path):
        define(feature_store)
        feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (1, H(1) + timedelta(microseconds=1), H(1), 2.0,
                                                                        "b")]))
        ts = pd.Series([pd.Timestamp(H(1)) + pd.Timedelta(nanoseconds=999)], dtype="datetime64[ns, UTC]")
        ents = pd.DataFrame({"k": [1], "event_timestamp": ts})
        path = tmp_path / "ns.parquet"
        ents.to_parquet(path)
        for source in (ents, str(path)):
            assert feature_store.get_historical_features(source, ["v:x"]).to_pandas()["x"].tolist() == [1.0]

    def test_every_output_path_returns_the_same_rows_in_input_order(self, feature_store, tmp_path):
        rnd = random.Random(3)
        define(feature_store)
        feature_store.ingest("v", frame([(k, H(h), H(h), float(k * 100 + h), None) for k in range(50)
                                         for h in range(0, 48, 3)]))
        ents = pd.DataFrame({"k": [rnd.randint(0, 60) for _ in range(20_000)],
                             "event_timestamp": [H(rnd.uniform(-1, 50)) for _ in range(20_000)],
                             "pos": range(20_000)})
        job = feature_store.get_historical_features(ents, ["v:x"])
        arrow = job.to_arrow().to_pandas()
        streamed = job.to_reader(1000).read_all().to_pandas()
        written = pd.read_parquet(job.to_parquet(tmp_path / "train.parquet"))
        assert arrow["pos"].tolist() == list(range(20_000))
        pd.testing.assert_frame_equal(arrow, streamed)
        pd.testing.assert_frame_equal(arrow, written)

    def test_view_without_history_gives_nulls(self, feature_store):
        define(feature_store)
        got = feature_store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [H(1)]}),
                                                    ["v:x"]).to_pandas()
        assert got["x"].isna().all()

    def test_random_histories_match_the_oracle(self, feature_store):
        rnd = random.Random(7)
        define(feature_store, ttl=timedelta(hours=6))
        batches = [[(rnd.randint(1, 6), H(rnd.randint(0, 24)), H(rnd.randint(0, 30)), float(rnd.randint(0, 99)),
                     rnd.choice(["a", "b", None])) for _ in range(40)] for _ in range(3)]
        ents = [{"k": rnd.choice([1, 2, 3, 4, 5, 6, 7, None]), "event_timestamp": H(rnd.randint(0, 36))}
                for _ in range(200)]
        self._check(feature_store, batches, timedelta(hours=6), ents)
        self._check_available(feature_store, batches, ents)

    def _check_available(self, store, batches, ents):
        got = store.get_historical_features(pd.DataFrame(ents), ["v:x"], point_in_time="available").to_pandas()
        want = oracle.training_set({"v": (["k"], timedelta(hours=6), self._oracle_rows(batches))}, ents, ["v:x"],
                                   point_in_time="available")
        assert [None if pd.isna(g) else g for g in got["x"]] == [w["x"] for w in want]

    # -- what ingest returns, and reruns (issue 12 items 3 and 4) ------------------------------------------------------
    def test_ingest_returns_the_version_it_created(self, feature_store):
        define(feature_store)
        ents = pd.DataFrame({"k": [1], "event_timestamp": [H(10)]})
        for i in range(3):
            got = feature_store.ingest("v", frame([(1, H(i), H(i), float(i), "a")]))
            assert not got.already_ingested and got.rows == 1
            # nothing is committed after an append (a new Delta table records its tie level in version 1)
            assert got.version == feature_store.offline.version("v") or (i == 0 and got.version == 0)
            # the returned version exists and holds this batch (not version + 1: NotFoundError)
            snap = feature_store.get_historical_features(ents, ["v:x"], snapshot={"v": got.version}).to_pandas()
            assert snap["x"].tolist() == [float(i)]

    def test_rerun_of_a_committed_batch_appends_nothing(self, feature_store):
        define(feature_store)
        first = feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]), batch_id="run-1")
        head = feature_store.offline.version("v")
        again = feature_store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]), batch_id="run-1")
        assert again.already_ingested and again.version == first.version and again.batch_id == "run-1"
        assert feature_store.offline.version("v") == head  # no new commit
        # the same rows without a batch id: identified by their hash while nothing else was ingested after them
        rows = frame([(2, H(2), None, 2.0, "b")])
        hashed = feature_store.ingest("v", rows)
        assert hashed.batch_id.startswith("sha256:")
        assert feature_store.ingest("v", rows).already_ingested
        assert feature_store.offline.version("v") == hashed.version
        # after another ingest, the same rows again are a deliberate re-send: appended (they win ties again)
        feature_store.ingest("v", frame([(2, H(2), None, 3.0, "c")]))
        resent = feature_store.ingest("v", rows)
        assert not resent.already_ingested and resent.version == feature_store.offline.version("v")
        got = feature_store.get_historical_features(pd.DataFrame({"k": [2], "event_timestamp": [H(5)]}),
                                                    ["v:x"]).to_pandas()
        assert got["x"].tolist() == [2.0]

    # -- the store contract's arguments, called as ingest calls them (issue 13) ----------------------------------------
    def test_append_takes_every_argument_of_the_contract(self, feature_store):
        v = define(feature_store)
        offline, engine = feature_store.offline, feature_store.engine
        calls = []

        def tie_check(rows, prior):
            calls.append(("tie_check", rows.num_rows, None if prior is None else prior.version))
            return engine.tie_level(v, rows, prior)

        def history_stats(prior):
            calls.append(("history_stats", prior.version))
            return engine.packing_stats(v, prior)

        def append(batch, data, **kw):
            rows = ingest.prepare(v, frame(data), batch=batch, write_time=datetime.now(UTC))
            return rows, offline.append("v", rows, batch=batch, tie_check=tie_check, history_stats=history_stats,
                                        **kw)

        first, v1 = append(1, [(1, H(1), H(1), 1.0, "a"), (2, H(2), H(2), 2.0, "b")], batch_id="b-1")
        assert calls == [("tie_check", 2, None)]  # a new history: checked against nothing, no stats to ask for
        head = offline.version("v")
        # An event time in microseconds: off the whole-second grid of any key packing recorded for the first rows
        # (the union still fits 62 bits: 33 for the event steps, 1 for the delay).
        us = timedelta(microseconds=1)
        second, v2 = append(2, [(1, H(3) + 7 * us, H(3) + 8 * us, 3.0, "c")], batch_id="b-2", once=True)
        assert v2 > v1 and v2 == offline.version("v")
        assert ("tie_check", 1, head) in calls  # checked against the exact history it commits on top of
        newest = offline.files("v", v2)
        assert newest.tie_level < FULL_TIES  # the check's answer is what the store records
        asked = [c for c in calls if c[0] == "history_stats"]
        if newest.key_packing_known:  # a store recording the packing widened it from the prior history's stats
            assert asked == [("history_stats", head)] and newest.key_packing is not None
            assert covers(newest.key_packing, packing_stats_arrow(pa.concat_tables([first, second])))
        else:  # a store recording no packing never asks
            assert asked == []
        # batch_id is recorded for committed(); once refuses a second commit of it
        found = offline.committed("v", "b-2")
        assert found is not None and found.batch == 2 and found.newest
        with pytest.raises(BatchAlreadyCommitted) as refused:
            append(3, [(3, H(5), H(5), 4.0, "d")], batch_id="b-2", once=True)
        assert refused.value.found.batch == 2 and offline.version("v") == v2
        got = feature_store.get_historical_features(pd.DataFrame({"k": [1, 3], "event_timestamp": [H(6), H(6)]}),
                                                    ["v:x"]).to_pandas()
        assert [None if pd.isna(x) else x for x in got["x"]] == [3.0, None]

    def test_append_without_a_tie_check_records_full_ties(self, feature_store):
        v = define(feature_store)
        rows = ingest.prepare(v, frame([(1, H(1), H(1), 1.0, "a")]), batch=1, write_time=datetime.now(UTC))
        feature_store.offline.append("v", rows, batch=1)
        assert feature_store.offline.files("v", feature_store.offline.version("v")).tie_level == FULL_TIES

    # -- write-time statistics (issue 18) ---------------------------------------------------------------------------
    def test_statistics_are_recorded_with_each_append_or_typed_unavailable(self, feature_store, monkeypatch):
        from skewless import statistics as stats_mod
        from skewless.errors import StatisticsUnavailable

        monkeypatch.setattr(stats_mod, "CUMULATIVE_EVERY", 2)  # cross cumulative records within a few appends
        define(feature_store)
        xs, versions = [], []
        for i in range(5):
            batch = [(k, H(i), H(i), float(10 * i + k), "ab"[k % 2]) for k in range(3)]
            versions.append(feature_store.ingest("v", frame(batch)).version)
            xs.append([r[3] for r in batch])
        if not feature_store.offline.supports_statistics:
            with pytest.raises(StatisticsUnavailable):
                feature_store.get_statistics("v")
            return
        for i, v in enumerate(versions):
            seen = [x for part in xs[:i + 1] for x in part]
            got = feature_store.get_statistics("v", v)
            x, s = got.features["x"], got.features["s"]
            assert got.rows == len(seen) and (x.count, x.nulls, x.min, x.max) == (len(seen), 0, min(seen), max(seen))
            assert x.mean == pytest.approx(sum(seen) / len(seen))
            assert dict(s.top()) == {"a": sum(1 for p in xs[:i + 1] for k in range(3) if k % 2 == 0),
                                     "b": sum(1 for p in xs[:i + 1] for k in range(3) if k % 2 == 1)}
