"""Batch scoring on the Spark engine (local mode): the credit model scored over the same entity rows and window
on the same repo by the DuckDB engine and by Spark gives the same rows, column for column (the features read by
Spark SQL through two read stages, the window's entities by Spark's materialize scan), and Spark's rows written to
a view read back by Spark."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from skewless import FeatureStore
from skewless.adapters.spark.engine import SparkEngine
from skewless.demo import _model
from skewless.sample_repo import credit_repo
from skewless.serving import ModelRegistry, package_model
from skewless.serving.batch_score import score

from .conftest import spark_config


def test_spark_scores_equal_duckdbs_and_write_a_view_spark_reads(tmp_path):
    repo = tmp_path / "repo"
    duck = credit_repo(repo)
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    job = duck.get_historical_features(loans, "credit_model_v1")
    train = job.to_pandas()
    model = _model().fit(train[[r.split(":")[1] for r in job.features]], train["loan_status"])
    ModelRegistry(duck).register(package_model(model, name="credit", store=duck, feature_service="credit_model_v1",
                                               training_set=job, key_lookups={"zipcode": "loan_zipcode:zipcode"}))
    ids = loans.drop_duplicates("loan_id").sample(40, random_state=2).loan_id.tolist() + [999_999_999]
    times = loans.event_timestamp.sort_values()
    entity = pd.DataFrame({"loan_id": ids, "event_timestamp": [times.iloc[15_000]] * 20 + [times.iloc[-1]] * 21})
    start = times.iloc[800]
    window = (start, start + timedelta(hours=12))
    expected = score(duck, "credit", entity).table
    expected_window = score(duck, "credit", start=window[0], end=window[1]).table
    spark_config(repo)
    spark = FeatureStore(repo)
    assert isinstance(spark.engine, SparkEngine)
    got = score(spark, "credit", entity, output_view="credit_scores")
    for c in expected.column_names:  # the request id names the job, which here writes to a view
        assert c == "request_id" or got.table.column(c).equals(expected.column(c)), \
            (c, got.table.column(c).to_pylist()[:5], expected.column(c).to_pylist()[:5])
    assert got.table.column("loan_features__status").to_pylist().count("PRESENT") >= 20  # not vacuous
    assert score(spark, "credit", start=window[0], end=window[1]).table.equals(expected_window)
    assert expected_window.num_rows >= 3
    later = entity.assign(event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1))
    back = spark.get_historical_features(later, ["credit_scores:output__proba_1"]).to_pandas()
    np.testing.assert_array_equal(back.output__proba_1.to_numpy(), got.table.column("output__proba_1").to_numpy())
