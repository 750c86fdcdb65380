"""Label views and splits in training sets, for every offline store + engine pair (docs/concepts/labels-and-splits.md).

``OfflineConformance`` inherits these cases, so every engine subclass runs them. A label view's rows are joined by
the spec's one point-in-time rule (expected values from ``tests/support/oracle.py``): with ``available`` a label
not yet known at the row's time (``created_timestamp > t``) is null. The split column is computed from the rows'
time and keys (expected values from ``tests/support/split_oracle.py``), so every engine gives the same split.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

import skewless as sk
from tests.support import oracle, split_oracle

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _h(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def define_labelled(store):
    """Entity ``k``; feature view ``v`` (x); label view ``outcome`` (defaulted, loss)."""
    ent = sk.Entity("ent", join_keys=["k"])
    v = sk.FeatureView("v", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])
    outcome = sk.LabelView("outcome", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("defaulted", sk.Int64),
                                                            sk.Field("loss", sk.Float64)])
    store.apply([ent, v, outcome])
    return v, outcome


# (k, event: the loan's start, created: when its outcome became known, defaulted, loss)
LABELS = [(1, _h(1), _h(10), 1, 50.0), (2, _h(2), _h(3), 0, 0.0), (3, _h(4), _h(30), 1, 7.5),
          (1, _h(20), _h(21), 0, 0.0)]
FEATURES = [(k, _h(0), _h(0), float(k)) for k in range(1, 7)]


class LabelsConformance:
    def _labelled(self, store):
        define_labelled(store)
        store.ingest("v", pd.DataFrame(FEATURES, columns=["k", "event_timestamp", "created_timestamp", "x"]))
        store.ingest("outcome", pd.DataFrame(LABELS, columns=["k", "event_timestamp", "created_timestamp",
                                                              "defaulted", "loss"]))

    def _want(self, ents, point_in_time):
        rows = [oracle.Row((k,), ev, cr, (0, i), {"defaulted": d, "loss": loss})
                for i, (k, ev, cr, d, loss) in enumerate(LABELS)]
        return oracle.training_set({"outcome": (["k"], None, rows)}, ents, ["outcome:defaulted", "outcome:loss"],
                                   point_in_time=point_in_time)

    def test_a_label_not_yet_known_at_the_rows_time_is_absent_with_available(self, feature_store):
        self._labelled(feature_store)
        ents = [{"k": 1, "event_timestamp": _h(1)}, {"k": 1, "event_timestamp": _h(12)},
                {"k": 2, "event_timestamp": _h(2)}, {"k": 2, "event_timestamp": _h(5)},
                {"k": 3, "event_timestamp": _h(4)}, {"k": 1, "event_timestamp": _h(20)},
                {"k": 5, "event_timestamp": _h(9)}]
        got = {}
        for mode in ("event", "available"):
            got[mode] = feature_store.get_historical_features(
                pd.DataFrame(ents), ["v:x"], labels=["outcome:defaulted", "outcome:loss"],
                point_in_time=mode).to_pandas()
            assert list(got[mode].columns) == ["k", "event_timestamp", "x", "defaulted", "loss"]  # labels last
            want = self._want(ents, mode)
            for c in ("defaulted", "loss"):
                assert [None if pd.isna(g) else g for g in got[mode][c]] == [w[c] for w in want], (mode, c)
        # the loan of k=1 at hour 1 defaulted, known at hour 10: joined by its event time, absent while unknown
        assert got["event"]["defaulted"].iloc[0] == 1 and pd.isna(got["available"]["defaulted"].iloc[0])
        assert got["available"]["defaulted"].iloc[1] == 1  # known by hour 12
        # k=1's second loan (hour 20, repaid, known at hour 21): not yet known, so the newest known label is the
        # first loan's, as the spec's rule says
        assert got["event"]["defaulted"].iloc[5] == 0 and got["available"]["defaulted"].iloc[5] == 1
        assert got["event"]["x"].tolist() == got["available"]["x"].tolist()  # features as before

    def test_split_by_time_and_entity_is_the_same_on_every_engine(self, feature_store, tmp_path):
        self._labelled(feature_store)
        ents = pd.DataFrame({"k": [i % 13 for i in range(60)], "event_timestamp": [_h(i * 7 % 40) for i in range(60)]})
        time = {"validation": _h(15), "test": _h(30)}
        fractions = {"train": 0.5, "validation": 0.2, "test": 0.3}
        cases = [sk.Split(time=time), sk.Split(entity=fractions, seed="s1"),
                 sk.Split(time=time, entity=fractions, seed="s1")]
        for split in cases:
            job = feature_store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"], split=split)
            got = job.to_pandas()
            assert list(got.columns) == ["k", "event_timestamp", "x", "defaulted", "split"]
            want = [split_oracle.split(t, (k,), time=time if split.time else None,
                                       entity=fractions if split.entity else None, seed=split.seed)
                    for k, t in zip(ents["k"], ents["event_timestamp"])]
            assert [None if pd.isna(s) else s for s in got["split"]] == want
            assert len(set(want) - {None}) == 3  # every split has rows: not vacuous
            # every output path carries the same column
            assert job.to_reader(batch_rows=7).read_all().to_pandas()["split"].equals(got["split"])
            assert pq.read_table(job.to_parquet(tmp_path / "t.parquet")).to_pandas()["split"].equals(got["split"])

    def test_unknown_split_key_is_a_definition_error(self, feature_store):
        self._labelled(feature_store)
        ents = pd.DataFrame({"k": [1], "event_timestamp": [_h(1)]})
        with pytest.raises(sk.DefinitionError, match="unknown keys"):
            feature_store.get_historical_features(ents, ["v:x"], split=sk.Split(entity={"train": 0.5, "test": 0.5},
                                                                                keys=["customer"]))
