"""Entity tables for training sets in every form users hold them: pandas, Arrow, polars, a Parquet path or glob,
and a DuckDB SQL query string (as Feast takes one); all give the same training set."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import skewless as sk
from skewless.errors import ValidationError

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(repo):
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    repo.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)])])
    repo.ingest("v", pd.DataFrame({"k": [1, 2, 3], "event_timestamp": [T0] * 3, "x": [10.0, 20.0, 30.0]}))
    return repo


def entity_rows() -> pd.DataFrame:
    return pd.DataFrame({"k": [3, 1, 2, 9], "event_timestamp": [T0 + timedelta(days=1)] * 4})


def test_every_entity_form_gives_the_same_training_set(store):
    df = entity_rows()
    path = store.repo_path / "entities"
    path.mkdir()
    df.iloc[:2].to_parquet(path / "a.parquet")
    df.iloc[2:].to_parquet(path / "b.parquet")
    forms = {
        "pandas": df, "arrow": pa.Table.from_pandas(df, preserve_index=False), "polars": pl.from_pandas(df),
        "glob": str(path / "*.parquet"),
        "query": f"SELECT * FROM read_parquet('{path}/*.parquet', filename = true) ORDER BY filename",
        "relative query": "SELECT * FROM read_parquet('entities/a.parquet') UNION ALL "
                          "SELECT * FROM read_parquet('entities/b.parquet')",
    }
    want = [30.0, 10.0, 20.0, None]
    for name, entity in forms.items():
        got = store.get_historical_features(entity, ["v:x"]).to_pandas()
        assert got["k"].tolist() == [3, 1, 2, 9], name
        assert [None if pd.isna(v) else v for v in got["x"]] == want, name


def test_a_bad_entity_query_is_a_validation_error(store):
    with pytest.raises(ValidationError, match="entity query"):
        store.get_historical_features("SELECT * FROM no_such_table", ["v:x"])
