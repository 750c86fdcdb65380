"""Batch scoring on the MaxCompute engine (the local emulator through pyodps): the credit model's features read by
MaxCompute SQL (two read stages: the loan -> zipcode key lookup), its predictions equal to what a real model
server answered for the same loans, written to a view whose history is a MaxCompute table, read back there as
features, a rerun appending nothing, and a window's entities found by MaxCompute's materialize scan."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from skewless import FeatureStore
from skewless.adapters.alibaba.maxcompute import MaxComputeEngine
from skewless.demo import _model
from skewless.repo import load_objects
from skewless.sample_repo import LOAN_ZIPCODE
from skewless.scaffold import scaffold
from skewless.serving import ModelRegistry, package_model
from skewless.serving.batch_score import score, window_entities
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.adapters.alibaba.test_maxcompute import _config
from tests.serving.test_serving import running

SERVICE = "credit_model_v1"


@pytest.fixture(scope="module")
def mc_credit(tmp_path_factory, maxcompute_endpoint):
    repo = tmp_path_factory.mktemp("mc-score") / "repo"
    scaffold(repo, force=True)
    (repo / "loan_zipcode.py").write_text(LOAN_ZIPCODE)
    (repo / "skewless.yaml").write_text(_config(maxcompute_endpoint, f"s{uuid.uuid4().hex[:10]}_"))
    store = FeatureStore(repo)
    assert isinstance(store.engine, MaxComputeEngine)
    store.apply(load_objects(repo), prune=True)
    for v in store.list_feature_views():
        store.ingest_source(v.name)
    store.materialize_incremental(utc_now())
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    train_rows = loans.sample(3000, random_state=0)
    job = store.get_historical_features(train_rows, SERVICE)
    train = job.to_pandas()
    model = _model().fit(train[[r.split(":")[1] for r in job.features]], train["loan_status"])
    art = package_model(model, name="credit", store=store, feature_service=SERVICE, training_set=job,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"})
    ModelRegistry(store).register(art, stage="production")
    return {"repo": repo, "store": store, "loans": loans}


def test_batch_scores_on_maxcompute_equal_the_model_servers_answers(mc_credit):
    store, loans = mc_credit["store"], mc_credit["loans"]
    ids = [int(i) for i in loans.drop_duplicates("loan_id").sample(25, random_state=4).loan_id] + [999_999_999]
    cfg = ServeConfig(repo=str(mc_credit["repo"]), model="credit", stage="production", log_flush_seconds=0.2)
    with running(cfg) as (client, _):
        r = client.post("/invocations", json={"instances": [{"loan_id": i} for i in ids]})
        assert r.status_code == 200, r.text
    # the history has not changed since the server read the online store: the same features at any later time
    entity = pd.DataFrame({"loan_id": ids, "event_timestamp": utc_now()})
    result = score(store, "credit", entity, output_view="credit_scores_mc")
    served = [p["proba_1"] for p in r.json()["predictions"]]
    np.testing.assert_allclose(result.table.column("output__proba_1").to_numpy(), served, rtol=1e-9)
    assert result.table.column("loan_features__status").to_pylist() == ["PRESENT"] * 25 + ["NOT_FOUND"]
    assert result.table.column("zipcode").null_count == 1
    assert result.written == 26 and not result.already_written
    # read back as features, by MaxCompute SQL
    later = entity.assign(event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1))
    job = store.get_historical_features(later, ["credit_scores_mc:output__proba_1"])
    assert "`" in job.sql  # MaxCompute's dialect: the join ran there
    np.testing.assert_array_equal(job.to_pandas().output__proba_1.to_numpy(),
                                  result.table.column("output__proba_1").to_numpy())
    again = score(store, "credit", entity, output_view="credit_scores_mc")
    assert (again.written, again.already_written) == (0, True)
    assert store.offline.version("credit_scores_mc") == 0  # one commit: the rerun appended nothing


def test_window_entities_found_by_maxcompute(mc_credit):
    store, loans = mc_credit["store"], mc_credit["loans"]
    start = loans.event_timestamp.sort_values().iloc[500]
    end = start + timedelta(hours=12)
    expected = sorted(loans[(loans.event_timestamp >= start) & (loans.event_timestamp <= end)].loan_id.unique())
    assert 3 <= len(expected) < 500
    assert window_entities(store, "loan_features", start, end).column("loan_id").to_pylist() == expected
    result = score(store, "credit", start=start, end=end)
    assert result.table.column("loan_id").to_pylist() == expected
    assert result.table.column("loan_features__status").to_pylist() == ["PRESENT"] * len(expected)
