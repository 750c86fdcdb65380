"""The `transactions` template trained and packaged on a history that ends now, and the replay check of its
prediction log: shared by the template's end-to-end test (uvicorn in process) and its container test (podman)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from skewless import FeatureStore
from skewless.cli.main import app
from skewless.repo import load_objects
from skewless.serving import package_model
from skewless.timeutil import now as utc_now
from skewless.transactions_data import generate
from tests.support.agg_oracle import same_value

AGGS = ["count_1h", "count_1d", "count_7d", "amount_sum_1d", "amount_sum_7d", "amount_mean_1d", "amount_mean_7d",
        "amount_max_1d", "amount_max_7d", "amount_stddev_7d"]
TRANSFORMED = ["spend:amount_vs_mean", "distance:km_from_home"]
REPLAYED = [f"txn_stats:{a}" for a in AGGS] + ["cards:home_lat", "cards:home_lon"] + TRANSFORMED
UNKNOWN_CARD = 10_000_001


def init(path) -> None:
    r = CliRunner().invoke(app, ["init", str(path), "--template", "transactions"])
    assert r.exit_code == 0, r.output


def trained(repo: Path, online_yaml: str | None = None) -> dict:
    """The template with its history moved to end now (what has arrived by now: created_timestamp <= now), so the
    windows read at serving time hold events; a training set with point_in_time="available", a model, materialized,
    packaged. ``online_yaml`` replaces the online store's ``url:`` line of skewless.yaml (e.g. a Redis URL)."""
    init(repo)
    if online_yaml:
        cfg = (repo / "skewless.yaml").read_text()
        assert "url: sqlite:///data/online.db" in cfg
        (repo / "skewless.yaml").write_text(cfg.replace("url: sqlite:///data/online.db", online_yaml))
    now = utc_now().replace(microsecond=0)
    generate(repo / "data", start=now - timedelta(days=30))
    txn_path = repo / "data" / "transactions.parquet"
    txn = pq.read_table(txn_path)
    txn = txn.filter(pc.less_equal(txn.column("created_timestamp"), pa.scalar(now, txn.schema.field(
        "created_timestamp").type)))
    pq.write_table(txn, txn_path)
    store = FeatureStore(repo)
    store.apply(load_objects(repo), prune=True)
    assert store.ingest_source("cards").rows == 500
    store.ingest_source("txn_stats")
    labels = pd.read_parquet(repo / "data" / "labels.parquet")
    labels = labels[labels.txn_id.isin(txn.column("txn_id").to_pylist())]  # the transactions that have arrived
    entity = labels[["card_id", "event_timestamp", "amount", "lat", "lon", "is_fraud"]]
    job = store.get_historical_features(entity, "fraud", point_in_time="available")
    train = job.to_pandas()
    features = [c for c in train.columns if c not in entity.columns]
    assert features == AGGS + ["amount_vs_mean", "km_from_home"]
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(train[features].astype(float),
                                                                            train.is_fraud)
    store.materialize_incremental(utc_now())
    art = package_model(model, name="fraud", store=store, feature_service="fraud", training_set=job,
                        path=repo.parent / "artifact")
    return {"repo": repo, "store": store, "model": model, "artifact": art, "train": train, "labels": labels,
            "txn": txn.to_pandas(), "features": features}


def requests(t: dict, n: int, seed: int = 3) -> list[dict]:
    """Requests for the ``n`` cards with the newest transactions (their windows hold events), near their homes,
    and one for a card that does not exist."""
    recent = t["txn"].sort_values("event_timestamp").card_id.drop_duplicates(keep="last").tail(n).tolist()
    rng = np.random.default_rng(seed)
    homes = pd.read_parquet(t["repo"] / "data" / "cards.parquet").set_index("card_id")
    rows = [{"card_id": int(c), "amount": float(round(rng.uniform(1, 900), 2)),
             "lat": float(homes.home_lat[c] + rng.normal(0, 2)), "lon": float(homes.home_lon[c] + rng.normal(0, 2))}
            for c in recent]
    return rows + [{"card_id": UNKNOWN_CARD, "amount": 12.5, "lat": 40.0, "lon": -74.0}]


def same_columns(a: pa.Table, b: pa.Table, columns) -> None:
    for col in columns:
        left, right = a.column(col).to_pylist(), b.column(col).to_pylist()
        bad = [i for i, (x, y) in enumerate(zip(left, right)) if not same_value(x, y)]
        assert len(left) == len(right) and not bad, (col, [(left[i], right[i]) for i in bad[:5]])


def replay(t: dict, log: pd.DataFrame) -> pd.DataFrame:
    """Every logged request through the training-set path (request fields from the log): the replayed inputs equal
    the logged ones value for value (aggregations, the transforms' inputs and outputs). Returns the replay."""
    entity = log[["card_id", "event_timestamp"]].assign(amount=log.request__amount, lat=log.request__lat,
                                                          lon=log.request__lon)
    again = t["store"].get_historical_features(entity, REPLAYED, full_feature_names=True,
                                               point_in_time="available").to_arrow()
    same_columns(again, pa.Table.from_pandas(log, preserve_index=False), [r.replace(":", "__") for r in REPLAYED])
    return again.to_pandas()


def predicted(t: dict, replayed: pd.DataFrame) -> list[float]:
    """The model's fraud probability on replayed inputs (in the order it was fitted on)."""
    x = replayed[[f"txn_stats__{a}" for a in AGGS] + ["spend__amount_vs_mean", "distance__km_from_home"]]
    x.columns = t["features"]
    return t["model"].predict_proba(x.astype(float))[:, 1].tolist()
