"""get_online_features with aggregated views: outputs beside plain views' features in one call, statuses and event
timestamps as docs/concepts/aggregations.md says, and the checks that keep a write whole."""

from datetime import timedelta

import pyarrow as pa
import pytest
from tests.support.agg_online import CARD, T0, AggRepo, txn_view

import skewless as sk
from skewless.errors import ConfigError
from skewless.online.base import NOT_FOUND, PRESENT
from skewless.online.sqlite import SQLiteOnlineStore

H, D = timedelta(hours=1), timedelta(days=1)


def repo(tmp_path, online=None, clock=T0 + 10 * D):
    aggs = [sk.Aggregation("amount", "sum", D), sk.Aggregation(None, "count", 7 * D),
            sk.Aggregation("merchant", "last_k(2)", D)]
    r = AggRepo(tmp_path / "repo", online, txn_view(aggs), clock=clock)
    plain = sk.FeatureView("profile", [CARD], [sk.Field("card", sk.Int64), sk.Field("tier", sk.String)])
    r.fs.apply([plain])
    return r


def test_plain_and_aggregated_features_in_one_read(tmp_path):
    r = repo(tmp_path)
    r.ingest([{"card": 1, "ev": T0 + 9 * D, "amount": 2.5, "merchant": "a", "txn": "x1"},
              {"card": 1, "ev": T0 + 9 * D + H, "amount": 1.0, "merchant": "b", "txn": "x2"},
              {"card": 2, "ev": T0 + 3 * D, "amount": 7.0, "merchant": "c", "txn": "y1"}])
    r.fs.ingest("profile", pa.table({"card": [1], "event_timestamp": pa.array([T0], pa.timestamp("us", "UTC")),
                                     "tier": ["gold"]}))
    plain = r.fs.get_feature_view("profile")
    svc = sk.FeatureService("svc", [plain[["tier"]], r.view[["amount_sum_1d", "count_7d", "merchant_last_2_1d"]]])
    r.fs.apply([svc])
    now = T0 + 9 * D + 2 * H
    got = r.fs.get_online_features(r.fs.get_feature_service("svc"), [{"card": 1}, {"card": 2}, {"card": 3}],
                                   full_feature_names=True, now=now)
    assert got.values == {"profile__tier": ["gold", None, None], "txn__amount_sum_1d": [3.5, None, None],
                          "txn__count_7d": [2, 1, 0], "txn__merchant_last_2_1d": [["b", "a"], [], []]}
    # aggregations are PRESENT with the spec's empty-window values; the event time is the newest counted event
    assert got.statuses["txn__count_7d"] == [PRESENT] * 3
    assert got.statuses["profile__tier"] == [PRESENT, NOT_FOUND, NOT_FOUND]
    assert got.event_timestamps["txn__count_7d"] == [T0 + 9 * D + H, T0 + 3 * D, None]


def test_null_key_and_a_read_before_the_write_of_a_tile_with_later_events(tmp_path):
    r = repo(tmp_path)
    r.ingest([{"card": 1, "ev": T0 + 9 * D + timedelta(minutes=5), "amount": 2.0, "txn": "x1"},
              {"card": 1, "ev": T0 + 9 * D + timedelta(minutes=30), "amount": 3.0, "txn": "x2"}])
    refs = ["txn:amount_sum_1d", "txn:count_7d", "txn:merchant_last_2_1d"]
    got = r.fs.get_online_features(refs, [{"card": None}], now=r.clock)
    assert got.statuses["count_7d"] == [NOT_FOUND] and got.values["count_7d"] == [0]
    assert got.values["merchant_last_2_1d"] == [[]]
    # written at T0 + 10 d: the tile (9 d, 9 d + 1 h] kept no raw events, so a read at 9 d + 10 min cannot leave out
    # the event at 9 d + 30 min: NOT_FOUND, null, never the value of another `now`
    past = r.fs.get_online_features(refs, [{"card": 1}], now=T0 + 9 * D + timedelta(minutes=10))
    assert past.statuses["amount_sum_1d"] == [NOT_FOUND] and past.values["amount_sum_1d"] == [None]
    # at or after the write time, every read is exact
    assert r.fs.get_online_features(refs, [{"card": 1}], now=r.clock).values["amount_sum_1d"] == [5.0]


class NoTiles(SQLiteOnlineStore):
    supports_tiles = False  # a store without the capability (like a backend that has not implemented tiles yet)


def test_a_store_without_tiles_refuses_an_aggregated_ingest_before_writing_anything(tmp_path):
    r = repo(tmp_path, NoTiles(str(tmp_path / "o.db")))
    with pytest.raises(ConfigError, match="keeps no aggregation tiles"):
        r.ingest([{"card": 1, "ev": T0, "amount": 1.0}])
    assert r.fs.offline.version("txn") is None
    with pytest.raises(ConfigError, match="keeps no aggregation tiles"):
        r.fs.materialize(T0, T0 + D)


def test_readiness_sees_an_aggregated_views_tiles(tmp_path):
    r = repo(tmp_path)
    assert r.fs.online.holds_rows(r.view) is False
    r.ingest([{"card": 1, "ev": T0, "amount": 1.0}])
    assert r.fs.online.holds_rows(r.view) is True


def test_a_changed_tile_layout_drops_the_tiles_and_materialize_rebuilds_them(tmp_path):
    r = repo(tmp_path)
    r.ingest([{"card": 1, "ev": T0 + 9 * D + H * i, "amount": float(i), "qty": i, "merchant": "m", "txn": f"x{i}"}
              for i in range(10)])
    r.fs.materialize_incremental(r.clock)
    # a new column aggregated and a longer window: the partials' columns and levels change
    wider = txn_view([*r.view.aggregations, sk.Aggregation("qty", "sum", 30 * D)])
    r.fs.apply([wider], allow_breaking=True)
    r.view = wider
    got = r.fs.get_online_features(["txn:qty_sum_30d", "txn:count_7d"], [{"card": 1}], now=r.clock)
    assert got.values == {"qty_sum_30d": [None], "count_7d": [0]}  # dropped: nothing stored until materialized
    r.fs.materialize_incremental(r.clock)  # starts from the beginning again
    r.check([1, 2], [r.clock, r.clock + 3 * D])
    # a change that leaves the layout alone keeps the tiles
    described = txn_view(wider.aggregations)
    described.description = "card transactions"
    r.fs.apply([described])
    r.view = described
    r.check([1], [r.clock])
