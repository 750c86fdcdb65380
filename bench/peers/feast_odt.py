"""Feast 0.67's on-demand feature view overhead on a 1-entity online read (run by bench/odt_bench.py in the Feast
venv of bench/peers/setup_feast.sh).

    .bench/feast-venv/bin/python bench/peers/feast_odt.py --workdir DIR --out result.json [--reps 5000]

A FeatureView ``stats`` (trips Int64, rate Float64) in Feast's SQLite online store (written with
``write_to_online_store``), and OnDemandFeatureViews over it and a RequestSource (``amount``) computing
``y = rate * amount + trips``: ``mode="python"`` (Feast's fastest; ``singleton=True``, its row form, when this
version has it) and ``mode="pandas"``. Each read requests the view's two features (plain) or those plus the ODFV's
output; calls are timed alternately (rotated per round) in one process. Overhead = median(ODFV) - median(plain).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
from datetime import datetime, timezone

import pandas as pd
from alternate import time_alternately  # bench/peers/, this script's folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=5000)
    args = ap.parse_args()

    import feast
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RequestSource, ValueType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    data = os.path.join(args.workdir, "data")
    os.makedirs(data, exist_ok=True)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    df = pd.DataFrame({"driver_id": range(1000), "event_timestamp": [t0] * 1000, "trips": range(1000),
                       "rate": [i / 1000 for i in range(1000)]})
    df.to_parquet(os.path.join(data, "stats.parquet"))
    config = RepoConfig(project="odt_bench", provider="local", registry=os.path.join(data, "registry.db"),
                        online_store=SqliteOnlineStoreConfig(path=os.path.join(data, "online.db")),
                        entity_key_serialization_version=3, repo_path=args.workdir)
    store = FeatureStore(config=config)
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats = FeatureView(name="stats", entities=[driver], ttl=None,
                        schema=[Field(name="driver_id", dtype=Int64), Field(name="trips", dtype=Int64),
                                Field(name="rate", dtype=Float64)],
                        source=FileSource(name="stats_source", path=os.path.join(data, "stats.parquet"),
                                          timestamp_field="event_timestamp"), online=True)
    req = RequestSource(name="req", schema=[Field(name="amount", dtype=Float64)])
    singleton = "singleton" in inspect.signature(on_demand_feature_view).parameters

    if singleton:
        @on_demand_feature_view(sources=[stats, req], schema=[Field(name="y", dtype=Float64)], mode="python",
                                singleton=True)
        def arith_row(inputs: dict) -> dict:
            return {"y": inputs["rate"] * inputs["amount"] + inputs["trips"]}

    @on_demand_feature_view(sources=[stats, req], schema=[Field(name="y", dtype=Float64)], mode="python")
    def arith(inputs: dict) -> dict:
        return {"y": [r * a + t for r, a, t in zip(inputs["rate"], inputs["amount"], inputs["trips"])]}

    @on_demand_feature_view(sources=[stats, req], schema=[Field(name="y", dtype=Float64)], mode="pandas")
    def arith_pd(inputs: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame()
        out["y"] = inputs["rate"] * inputs["amount"] + inputs["trips"]
        return out

    objs = [driver, stats, arith, arith_pd] + ([arith_row] if singleton else [])
    store.apply(objs)
    store.write_to_online_store("stats", df)

    plain = ["stats:trips", "stats:rate"]
    rows = [[{"driver_id": i, "amount": float(i % 97)}] for i in range(1000)]
    keys = [[{"driver_id": i}] for i in range(1000)]
    got = store.get_online_features(features=plain + ["arith:y"], entity_rows=rows[7]).to_dict()["y"]
    assert abs(got[0] - (0.007 * 7.0 + 7)) < 1e-9, got
    calls = {"plain": lambda i: store.get_online_features(features=plain, entity_rows=keys[i % 1000]),
             "python": lambda i: store.get_online_features(features=plain + ["arith:y"], entity_rows=rows[i % 1000]),
             "pandas": lambda i: store.get_online_features(features=plain + ["arith_pd:y"],
                                                           entity_rows=rows[i % 1000])}
    if singleton:
        calls["python_singleton"] = lambda i: store.get_online_features(features=plain + ["arith_row:y"],
                                                                        entity_rows=rows[i % 1000])
    lat = time_alternately(calls, args.reps, warmup=200)
    base = lat["plain"]["p50_us"]
    res = {"status": "ok", "feast": feast.__version__, "singleton": singleton, "latency": lat,
           "overhead_us": {k: v["p50_us"] - base for k, v in lat.items() if k != "plain"}}
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
