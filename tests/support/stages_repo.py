"""A feature repo with a two-stage pipeline, for the stage tests (tests/core/test_stages.py, tests/serving/
test_stages_model.py): customers' monthly ``activity`` (customer_id -> spend) from January to June 2024; stage
``scale`` (activity -> ``scaled``: spend over the history's mean spend) and stage ``rank`` (scaled -> ``ranked``:
each row's rank of its month). The repo is written as files (``features.py``), so the CLI and child processes load
the same stages (their functions found in the repo)."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import skewless as sk

UTC = timezone.utc
MONTHS = [datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 7)]
CUSTOMERS = 40
TEST_FROM = "2024-04-01"  # the time split's test cut-off: April, May, June are test

FEATURES = textwrap.dedent('''
    import pyarrow as pa
    import pyarrow.compute as pc
    import skewless as sk
    from skewless.stages import Stage

    customer = sk.Entity("customer", join_keys=["customer_id"])
    activity = sk.FeatureView("activity", entities=[customer],
                              schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend", sk.Float64)])
    scaled = sk.FeatureView("scaled", entities=[customer],
                            schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend_scaled", sk.Float64)])
    ranked = sk.FeatureView("ranked", entities=[customer],
                            schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend_rank", sk.Float64)])


    def scale_spend(inputs):
        rows = inputs["activity"]
        mean = pc.mean(rows.column("spend")).as_py()
        return pa.table({"customer_id": rows.column("customer_id"), "event_timestamp": rows.column("event_timestamp"),
                         "spend_scaled": pc.divide(rows.column("spend"), mean)})


    def rank_spend(inputs):
        df = inputs["scaled"].to_pandas()
        df["spend_rank"] = df.groupby("event_timestamp")["spend_scaled"].rank().astype(float)
        return df[["customer_id", "event_timestamp", "spend_rank"]]


    scale = Stage("scale", inputs=[activity], output=scaled, transform=scale_spend)
    rank = Stage("rank", inputs=[scaled], output=ranked, transform=rank_spend)
''')


def activity_rows(months=MONTHS, spend_shift: float = 0.0) -> pd.DataFrame:
    """Each month's spend, known when it happened (``created_timestamp``: read as available then)."""
    return pd.DataFrame([{"customer_id": c, "event_timestamp": m, "created_timestamp": m,
                          "spend": float(c * 10 + i) + spend_shift}
                         for i, m in enumerate(months) for c in range(CUSTOMERS)])


def entity_rows(months=MONTHS) -> pd.DataFrame:
    return pd.DataFrame([{"customer_id": c, "event_timestamp": m} for m in months for c in range(CUSTOMERS)])


def make_repo(path: Path, features: str = FEATURES, *, ingest: bool = True) -> sk.FeatureStore:
    store = sk.init_repo(path)
    (path / "features.py").write_text(features)
    from skewless.repo import load_objects

    store.apply(load_objects(path), prune=True)
    if ingest:
        store.ingest("activity", activity_rows())
    return store
