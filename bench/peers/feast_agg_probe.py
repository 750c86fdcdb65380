"""Does Feast 0.67 compute windowed aggregations for a training set? A probe on three events (run in the Feast venv of
bench/peers/setup_feast.sh; bench/agg_training_bench.py runs it and records its output with the results).

    .bench/feast-venv/bin/python bench/peers/feast_agg_probe.py --workdir DIR [--offline-store duckdb|file]

Card 1 has amounts 1, 2 and 4 at 00:10, 00:20 and 00:30; an entity row at 00:40 asks for
``Aggregation(column="amount", function="sum", time_window=1 h)`` of a BatchFeatureView (the view type that takes
``aggregations`` in 0.67) over a FileSource of those events. A windowed sum is 7.0. The probe prints one JSON object:
what ``get_historical_features(...).to_df()`` returned for the feature, and what ``materialize`` (the local compute
engine, the only one that runs without a Spark or Ray cluster) did with the same view.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from datetime import datetime, timedelta, timezone


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--offline-store", choices=["duckdb", "file"], default="duckdb")
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)  # Feast resolves repo paths against repo_path
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(args.workdir, "metrics"))
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    warnings.simplefilter("ignore")

    import feast
    import pandas as pd
    from feast import BatchFeatureView, Entity, FeatureStore, Field, FileSource, PushSource, StreamFeatureView, ValueType
    from feast.aggregation import Aggregation
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    if args.offline_store == "duckdb":
        from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig as OfflineConfig
    else:
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig as OfflineConfig

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = os.path.join(args.workdir, "data")
    os.makedirs(data, exist_ok=True)
    events = pd.DataFrame({"card": [1, 1, 1], "amount": [1.0, 2.0, 4.0],
                           "event_timestamp": [t0 + timedelta(minutes=m) for m in (10, 20, 30)]})
    events.to_parquet(os.path.join(data, "events.parquet"))
    config = RepoConfig(project="agg_probe", provider="local", registry=os.path.join(data, "registry.db"),
                        online_store=SqliteOnlineStoreConfig(path=os.path.join(data, "online.db")),
                        offline_store=OfflineConfig(), entity_key_serialization_version=3, repo_path=args.workdir)
    store = FeatureStore(config=config)
    card = Entity(name="card", join_keys=["card"], value_type=ValueType.INT64)
    agg = Aggregation(column="amount", function="sum", time_window=timedelta(hours=1))
    out_name = agg.resolved_name(agg.time_window)  # the aggregation's output feature: sum_amount_3600s

    def batch_view(name: str, extra: list) -> BatchFeatureView:
        return BatchFeatureView(name=name, entities=[card], ttl=timedelta(0), mode="pandas", online=True,
                                schema=[Field(name="card", dtype=Int64), Field(name="amount", dtype=Float64)] + extra,
                                source=FileSource(name=f"{name}_events", path=os.path.join(data, "events.parquet"),
                                                  timestamp_field="event_timestamp"), aggregations=[agg])

    # The other view type that takes aggregations (and the only one whose registry entry keeps them): a
    # StreamFeatureView over a PushSource whose batch source is the same file, tiled with a 5-minute hop.
    push = PushSource(name="txn_push", batch_source=FileSource(name="txn_stream_events", path=os.path.join(
        data, "events.parquet"), timestamp_field="event_timestamp"))
    stream = StreamFeatureView(name="txn_stream", entities=[card], ttl=timedelta(0), source=push, mode="pandas",
                               schema=[Field(name="card", dtype=Int64), Field(name="amount", dtype=Float64)],
                               aggregations=[agg], timestamp_field="event_timestamp", enable_tiling=True,
                               tiling_hop_size=timedelta(minutes=5))
    # txn: the raw column only; txn_out: also declares the aggregation's output feature
    store.apply([card, batch_view("txn", []), batch_view("txn_out", [Field(name=out_name, dtype=Float64)]), stream])
    entity_df = pd.DataFrame({"card": [1], "event_timestamp": [t0 + timedelta(minutes=40)]})
    res = {"feast": feast.__version__, "offline_store": args.offline_store, "events": [1.0, 2.0, 4.0],
           "aggregation": "sum(amount) over 1 h at 00:40", "windowed_sum_expected": 7.0,
           "registry_keeps_aggregations": {v: bool(getattr(store.registry.get_any_feature_view(v, "agg_probe"),
                                                           "aggregations", None)) for v in ("txn", "txn_stream")},
           "get_historical_features": {}, "materialize": {}}
    for ref in ("txn:amount", f"txn_out:{out_name}", "txn_stream:amount", f"txn_stream:{out_name}"):
        try:
            df = store.get_historical_features(entity_df=entity_df, features=[ref]).to_df()
            col = ref.split(":")[1]
            res["get_historical_features"][ref] = [None if pd.isna(v) else float(v) for v in df[col]]
        except Exception as e:  # the evidence is the error itself
            res["get_historical_features"][ref] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    for name in ("txn", "txn_stream"):
        try:
            store.materialize(t0 - timedelta(days=1), t0 + timedelta(days=1), feature_views=[name])
            online = store.get_online_features(features=[f"{name}:amount"], entity_rows=[{"card": 1}]).to_dict()
            res["materialize"][name] = f"ok; online {name}:amount = {online['amount']}"
        except Exception as e:
            res["materialize"][name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    res["computes_windowed_aggregation"] = any(v == [7.0] for v in res["get_historical_features"].values())
    print(json.dumps(res))


if __name__ == "__main__":
    main()
