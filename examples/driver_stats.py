"""The flow every example runs, on whatever store its skewless.yaml names: define -> apply -> ingest -> training
set -> materialize -> online read, each result checked against the values it must have (exit 1 otherwise)."""

from __future__ import annotations

import sys

import pandas as pd

import skewless as sk

driver = sk.Entity("driver", join_keys=["driver_id"])
driver_stats = sk.FeatureView(
    "driver_stats", entities=[driver],
    schema=[sk.Field("driver_id", sk.Int64), sk.Field("conv_rate", sk.Float64), sk.Field("trips", sk.Int32)],
    ttl=None,  # no TTL: a value stays valid until a newer one arrives
    owner="ml@example.com")
ranker = sk.FeatureService("ranker_v1", features=[driver_stats[["conv_rate", "trips"]]])

UTC = "UTC"
ROWS = pd.DataFrame({  # driver 1 changes on 2 Jan; driver 2 appears at noon on 1 Jan
    "driver_id": [1, 1, 2],
    "event_timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-01 12:00"]).tz_localize(UTC),
    "conv_rate": [0.1, 0.2, 0.5],
    "trips": pd.array([10, 20, 5], dtype="int32"),
})


def check(what: str, got, want) -> None:
    if got != want:
        sys.exit(f"FAILED {what}: got {got!r}, want {want!r}")
    print(f"ok  {what}: {got!r}")


def run(store: sk.FeatureStore) -> None:
    store.apply([driver, driver_stats, ranker])
    result = store.ingest("driver_stats", ROWS, batch_id="2024-01-02")  # a rerun of this batch appends nothing
    print(f"ingested: {result}")

    # Point in time: each entity row sees the newest value at or before its own timestamp, never a later one.
    entity_df = pd.DataFrame({
        "driver_id": [1, 1, 2, 2],
        "event_timestamp": pd.to_datetime(["2024-01-01 12:00", "2024-01-03 00:00", "2024-01-01 06:00",
                                           "2024-01-02 00:00"]).tz_localize(UTC)})
    training = store.get_historical_features(entity_df, ranker).to_pandas()
    rates = [None if pd.isna(x) else float(x) for x in training["conv_rate"]]
    check("training set conv_rate", rates, [0.1, 0.2, None, 0.5])  # driver 2 at 06:00: nothing yet

    store.materialize_incremental(pd.Timestamp.now(tz=UTC).to_pydatetime())
    online = store.get_online_features(ranker, [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}]).to_dict()
    check("online conv_rate", online["conv_rate"], [0.2, 0.5, None])
    check("online trips", online["trips"], [20, 5, None])
    print("all checks passed")
