"""The A/B comparison of two stage versions (docs/concepts/stages.md#comparing-two-versions): ``scale@v1`` and
``scale@v2`` on the same entity rows, their outputs' agreement, and a downstream classifier packaged on v1's
outputs (reading ``scaled`` unpinned while v1 was production) batch-scored with each version's outputs: the
agreement of its predictions and its accuracy / AUC against labels. Every figure is computed here independently
(pandas, scikit-learn) from the raw rows."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import NotFoundError, ValidationError
from skewless.serving import ModelRegistry, package_model
from skewless.serving.batch_score import score
from skewless.serving.stage_compare import compare_stage_versions, metric
from skewless.stages import promote, run
from skewless.stages.compare import compare_outputs
from tests.support.stages_repo import CUSTOMERS, MONTHS, VERSIONED, activity_rows, make_repo

AT = datetime(2024, 3, 15, tzinfo=timezone.utc)


def scaled(version: int) -> np.ndarray:
    """Customers 0..39's March spend scaled as version ``version`` does (by the history's mean, or its maximum)."""
    raw = activity_rows()
    march = raw[raw.event_timestamp == MONTHS[2]].sort_values("customer_id").spend.to_numpy()
    return march / (raw.spend.mean() if version == 1 else raw.spend.max())


LABELS = (scaled(1) > 0.8).astype(np.int64)  # "a big spender": the downstream model's label


def entities() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": range(CUSTOMERS), "event_timestamp": [AT] * CUSTOMERS, "big": LABELS})


@pytest.fixture
def store(tmp_path):
    store = make_repo(tmp_path / "repo", VERSIONED)
    run(store, "scale@v1")
    run(store, "scale@v2")
    promote(store, "scale", "v1")
    return store


def classifier(store) -> LogisticRegression:
    """A classifier trained on v1's outputs through service ``svc`` (unpinned: production, v1), registered as model
    ``nba`` answering its class (``prediction``) and as ``nba_proba`` answering its class probabilities."""
    job = store.get_historical_features(entities().drop(columns="big"), "svc")
    clf = LogisticRegression(C=100.0).fit(job.to_pandas()[["spend_scaled"]].to_numpy(), LABELS)
    for name, method in (("nba", "predict"), ("nba_proba", "predict_proba")):
        ModelRegistry(store).register(package_model(clf, name=name, store=store, feature_service="svc",
                                                    snapshot=job.snapshot, method=method))
    return clf


def test_outputs_of_two_versions_on_the_same_entities(store):
    got = compare_outputs(store, "scale", "v1", "v2", entities())
    assert (got["a"], got["b"]) == ({"pin": "v1", "version": 1, "view": "scaled__v1"},
                                    {"pin": "v2", "version": 2, "view": "scaled__v2"})
    o = got["outputs"]["spend_scaled"]
    assert (got["rows"], o["rows"], o["both"], o["missing_a"], o["missing_b"]) == (CUSTOMERS,) * 3 + (0, 0)
    assert o["share_equal"] == 0.0
    assert o["mean_a"] == pytest.approx(scaled(1).mean()) and o["mean_b"] == pytest.approx(scaled(2).mean())
    assert o["mean_abs_diff"] == pytest.approx(np.abs(scaled(1) - scaled(2)).mean())
    assert o["max_abs_diff"] == pytest.approx(np.abs(scaled(1) - scaled(2)).max())
    # aliases name versions; a version against itself is no comparison
    assert compare_outputs(store, "scale", "production", 2, entities())["a"]["version"] == 1
    with pytest.raises(ValidationError, match="both version v1"):
        compare_outputs(store, "scale", "production", "v1", entities())
    with pytest.raises(NotFoundError, match="stage 'scale' has no version v4"):
        compare_outputs(store, "scale", "v1", "v4", entities())
    with pytest.raises(NotFoundError, match="no version of stage 'scale' is 'staging'"):
        compare_outputs(store, "scale", "v1", "staging", entities())


def test_the_downstream_model_scored_with_each_version(store):
    clf = classifier(store)
    got = compare_stage_versions(store, "scale", "v1", "v2", entities(), model="nba", model_version=1, labels="big")
    pred = {1: clf.predict(scaled(1).reshape(-1, 1)), 2: clf.predict(scaled(2).reshape(-1, 1))}
    down = got["model"]
    assert (down["model"], down["version"], down["reads"], down["output"]) == ("nba", 1, ["scaled__v1"], "prediction")
    assert down["agreement"]["share_equal"] == pytest.approx(np.mean(pred[1] == pred[2]))
    assert 0 < down["agreement"]["share_equal"] < 1  # v2's smaller values flip some predictions
    assert down["metric"] == "accuracy"
    assert down["a"] == pytest.approx(np.mean(pred[1] == LABELS)) and down["b"] == pytest.approx(
        np.mean(pred[2] == LABELS))
    assert down["a"] > down["b"]
    # AUC of the class-1 probability (the scores are monotonic in spend for both versions: rank-based, equal)
    auc = compare_stage_versions(store, "scale", "v2", "v1", entities(), model="nba_proba", labels="big",
                                 output="proba_1", metric_name="auc")["model"]
    proba = {v: clf.predict_proba(scaled(v).reshape(-1, 1))[:, 1] for v in (1, 2)}
    assert auc["a"] == pytest.approx(roc_auc_score(LABELS, proba[2]))
    assert auc["b"] == pytest.approx(roc_auc_score(LABELS, proba[1]))
    assert auc["agreement"]["mean_abs_diff"] == pytest.approx(np.abs(proba[1] - proba[2]).mean())
    with pytest.raises(ValidationError, match="metric must be one of"):
        compare_stage_versions(store, "scale", "v1", "v2", entities(), model="nba", labels="big", metric_name="f1")
    with pytest.raises(ValidationError, match="no column 'nope'"):
        compare_stage_versions(store, "scale", "v1", "v2", entities(), model="nba", labels="nope")
    with pytest.raises(ValidationError, match="labels score a downstream model: give model= too"):
        compare_stage_versions(store, "scale", "v1", "v2", entities(), labels="big")
    with pytest.raises(ValidationError, match="give read_views or output_view, not both"):  # a comparison is not written
        score(store, "nba", entities(), read_views={"scaled__v1": "scaled__v2"}, output_view="nba_scores")


def test_metric_matches_scikit_learn():
    rng = np.random.default_rng(3)
    y, s = rng.integers(0, 2, 200), np.round(rng.random(200), 1)  # ties on purpose
    assert metric("auc", s, y) == pytest.approx(roc_auc_score(y, s))
    assert metric("rmse", s, y) == pytest.approx(np.sqrt(np.mean((s - y) ** 2)))
    assert metric("mae", s, y) == pytest.approx(np.mean(np.abs(s - y)))


def test_a_model_reading_no_version_is_refused(store):
    job = store.get_historical_features(entities().drop(columns="big"), ["activity:spend"])
    store.apply([sk.FeatureService("raw", [store.get_feature_view("activity")])])
    clf = LogisticRegression().fit(job.to_pandas()[["spend"]].to_numpy(), LABELS)
    ModelRegistry(store).register(package_model(clf, name="raw_model", store=store, feature_service="raw",
                                                snapshot=job.snapshot))
    with pytest.raises(ValidationError, match="reads no version of stage 'scale'"):
        compare_stage_versions(store, "scale", "v1", "v2", entities(), model="raw_model")


def test_stage_compare_cli(store, tmp_path):
    classifier(store)
    path = tmp_path / "rows.parquet"
    entities().to_parquet(path)
    base = ["stage", "compare", "scale", "v1", "v2", "--entities", str(path), "--repo", str(store.repo_path)]
    out = CliRunner().invoke(app, [*base, "--model", "nba", "--model-version", "1", "--labels", "big", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    want = compare_stage_versions(store, "scale", "v1", "v2", entities(), model="nba", model_version=1, labels="big")
    assert got == json.loads(json.dumps(want))
    out = CliRunner().invoke(app, base)
    assert out.exit_code == 0, out.output
    assert "A = v1 (scaled__v1), B = v2 (scaled__v2), 40 entity rows" in out.output and "spend_scaled" in out.output
    out = CliRunner().invoke(app, [*base, "--model", "nba", "--model-version", "1", "--labels", "big"])
    assert out.exit_code == 0 and f"accuracy of model nba v1 on 'big': A {got['model']['a']:.6g}" in out.output
