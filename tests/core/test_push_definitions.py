"""``FeatureStore.push`` and the registry: the views a push writes are decoded once per registry version
(``push.views_for``), and still follow an apply at once; an online push may skip its rows' identity hash."""

from datetime import datetime, timezone

import pandas as pd

import skewless as sk
from skewless import push as push_mod

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
DRIVER = sk.Entity("driver", join_keys=["driver_id"])


def stats(*extra):
    return sk.FeatureView("stats", entities=[DRIVER], schema=[sk.Field("driver_id", sk.Int64),
                                                               sk.Field("rate", sk.Float64), *extra])


def test_a_push_right_after_an_apply_writes_the_new_definition(repo):
    repo.apply([DRIVER, stats()])
    repo.push("stats", pd.DataFrame({"driver_id": [1], "rate": [0.5], "event_timestamp": [T]}))
    assert repo.get_online_features(["stats:rate"], [{"driver_id": 1}]).values["rate"] == [0.5]
    # A field added: the next push (same store object, whose views were decoded for the previous version) knows it.
    repo.apply([DRIVER, stats(sk.Field("bonus", sk.Int64))])
    repo.push("stats", pd.DataFrame({"driver_id": [1], "rate": [0.7], "bonus": [3], "event_timestamp": [T]}))
    got = repo.get_online_features(["stats:rate", "stats:bonus"], [{"driver_id": 1}]).values
    assert got == {"rate": [0.7], "bonus": [3]}
    # A view fed by a push source of that name, added later, is found too (its views decoded for the new version).
    repo.apply([sk.FeatureView("rates", entities=[DRIVER], schema=[sk.Field("driver_id", sk.Int64),
                                                                   sk.Field("rate", sk.Float64)],
                               source=sk.ParquetSource("data/rates.parquet", name="rate_events"))])
    assert [v.name for v in push_mod.views_for(repo, "rate_events")] == ["rates"]
    # A caller altering the returned list does not alter the next push's.
    push_mod.views_for(repo, "stats").clear()
    assert [v.name for v in push_mod.views_for(repo, "stats")] == ["stats"]


def test_an_online_push_without_identity_writes_the_same_rows(repo):
    repo.apply([DRIVER, stats()])
    df = pd.DataFrame({"driver_id": [1, 2], "rate": [0.5, 0.6], "event_timestamp": [T, T]})
    hashed = repo.push("stats", df)
    assert hashed[0].batch_id.startswith("sha256:") and hashed[0].rows == 2
    bare = repo.push("stats", df.assign(rate=[0.8, 0.9]), to="online", identify=False)
    assert bare[0].batch_id is None and bare[0].rows == 2 and bare[0].version is None
    assert repo.get_online_features(["stats:rate"], [{"driver_id": 1}, {"driver_id": 2}]).values["rate"] == \
        [0.8, 0.9]
