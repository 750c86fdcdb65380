"""A small repo with on-demand transforms, shared by the transform tests (core, serving) and bench/odt_bench.py:
a driver view (trips, rate), a pandas transform and a row transform over it with a request field and the time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

import skewless as sk

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

driver = sk.Entity("driver", join_keys=["driver_id"], dtype=sk.Int64)
stats = sk.FeatureView("stats", entities=[driver],
                       schema=[sk.Field("trips", sk.Int64), sk.Field("rate", sk.Float64), sk.Field("city", sk.String)])


@sk.on_demand(inputs=["stats:trips", "stats:rate"], request=[sk.Field("amount", sk.Float64)],
              outputs=[sk.Field("ratio", sk.Float64), sk.Field("big", sk.Bool), sk.Field("score", sk.Int64)])
def ratios(df):
    """amount per trip, and a bucketed score (vectorised); a negative amount is refused."""
    if (df["amount"] < 0).any():
        raise ValueError("negative amount")
    out = pd.DataFrame()
    out["ratio"] = df["amount"] / (df["trips"].fillna(0) + 1)
    out["big"] = df["amount"] > 100.0
    out["score"] = np.floor(df["rate"].fillna(0.0) * 10).astype("int64")
    return out


@sk.on_demand(inputs={"n": "stats:trips", "rate": "stats:rate"}, request=[sk.Field("amount", sk.Float64)],
              outputs=[sk.Field("per_trip", sk.Float64), sk.Field("hour", sk.Int64)], time="at", mode="row")
def per_trip(row):
    n = row["n"] or 0
    return {"per_trip": row["amount"] * (row["rate"] or 0.0) / (n + 1), "hour": row["at"].hour}


def history(n_drivers: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_drivers):
        for k in range(3):
            rows.append({"driver_id": d, "event_timestamp": T0 + timedelta(hours=k * 5 + d % 3),
                         "trips": int(rng.integers(0, 50)), "rate": float(np.round(rng.random(), 3)),
                         "city": ["a", "b"][d % 2]})
    return pd.DataFrame(rows)


def make_repo(path, *, transforms=(ratios, per_trip), service: bool = True) -> sk.FeatureStore:
    store = sk.init_repo(path)
    objs = [driver, stats, *transforms]
    if service:
        objs.append(sk.FeatureService("svc", [stats[["trips", "rate"]], *transforms]))
    store.apply(objs)
    store.ingest("stats", history())
    return store
