"""The end-to-end path every cloud test runs on a repo whose skewless.yaml points at that cloud: apply the
credit-scoring definitions -> ingest -> training set -> materialize -> online reads equal historical retrieval at
t = now for every entity (the spec's invariant)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skewless import FeatureStore
from skewless.repo import load_objects
from skewless.scaffold import scaffold
from skewless.timeutil import now as utc_now

SERVICE = "credit_model_v1"


def scaffold_with_config(repo: Path, config_yaml: str) -> Path:
    """The credit-scoring repo (definitions + sample Parquet), with the given skewless.yaml."""
    scaffold(repo, force=True)
    (repo / "skewless.yaml").write_text(config_yaml)
    return repo


def run(repo: Path, *, sample: int = 400) -> dict:
    store = FeatureStore(repo)
    objects = load_objects(repo)
    store.apply(objects, prune=True)
    versions = {v.name: store.ingest_source(v.name) for v in store.list_feature_views()}
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet", columns=["loan_id", "zipcode", "event_timestamp",
                                                                           "loan_status"])
    training = store.get_historical_features(loans, SERVICE).to_pandas()
    features = [c for c in training.columns if c not in loans.columns]
    now = utc_now()
    materialized = {r.view: r.rows for r in store.materialize_incremental(now)}
    picks = loans.drop_duplicates("loan_id").sample(min(sample, len(loans)), random_state=1)
    rows = [{"loan_id": int(r.loan_id), "zipcode": int(r.zipcode)} for r in picks.itertuples()]
    online = pd.DataFrame(store.get_online_features(SERVICE, rows, now=now).values)[features]
    at_now = pd.DataFrame(rows).assign(event_timestamp=now)
    offline = store.get_historical_features(at_now, SERVICE).to_pandas()[features]
    norm = lambda df: df.astype(object).where(df.notna(), None).reset_index(drop=True)  # noqa: E731
    return {"store": store, "training": training, "features": features, "versions": versions,
            "materialized": materialized, "online": norm(online), "offline": norm(offline)}
