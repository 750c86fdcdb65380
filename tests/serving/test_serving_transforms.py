"""On-demand transforms in the model server, on real parts (a uvicorn server on loopback, the SQLite store): the
artifact pins the transforms' hashes, served outputs equal get_online_features and the training-set path, the
prediction log holds the transforms' inputs and outputs and replays through get_historical_features to the same
outputs, failures are typed HTTP errors naming the transform and the row, and a registry holding other code for a
pinned transform keeps the server not ready, saying why."""

from __future__ import annotations

from pathlib import Path

import uuid

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import skewless as sk
from skewless.serving import package_model, read_log
from skewless.serving.model import ServedModel
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.serving.test_serving import running
from tests.support.odt_repo import T0, driver, make_repo, per_trip, ratios, stats
from tests.support.predictions import assert_same_predictions

INPUTS = ["trips", "rate", "ratio", "big", "score", "per_trip", "hour"]
OUT_REFS = ["ratios:ratio", "ratios:big", "ratios:score", "per_trip:per_trip", "per_trip:hour"]


def trained(repo: Path) -> dict:
    store = make_repo(repo)
    store.materialize(T0, utc_now())
    rng = np.random.default_rng(1)
    ent = pd.DataFrame({"driver_id": np.arange(20).repeat(5), "amount": rng.uniform(0, 200, 100).round(2),
                        "event_timestamp": pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 48, 100), unit="h")})
    job = store.get_historical_features(ent, "svc")
    train = job.to_pandas()
    model = LogisticRegression(max_iter=500).fit(train[INPUTS].astype(float), (train.amount > 100).astype(int))
    art = package_model(model, name="odt", store=store, feature_service="svc", training_set=job,
                        path=repo.parent / "artifact")
    return {"repo": repo, "store": store, "model": model, "artifact": art}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("odt_serving") / "repo")


def test_artifact_pins_the_transforms_and_reads_their_inputs(served):
    m = served["artifact"].manifest
    assert m.transform_hashes() == {"per_trip": per_trip.hash, "ratios": ratios.hash}
    assert m.transforms["ratios"]["source"] == ratios.source
    assert [i["source"] for i in m.inputs] == ["stats:trips", "stats:rate", "ratios:ratio", "ratios:big",
                                               "ratios:score", "per_trip:per_trip", "per_trip:hour"]
    assert m.request_fields() == {"amount": "Float64"}
    assert m.online_refs() == ["stats:trips", "stats:rate"]


def test_served_outputs_equal_online_and_training_paths_and_the_log_replays(served):
    store = served["store"]
    cfg = ServeConfig(repo=str(served["repo"]), model_dir=str(served["artifact"].path), log_flush_seconds=3600)
    rows = [{"driver_id": i % 20, "amount": float(a)} for i, a in enumerate([5.0, 150.0, 99.5, 0.0, 250.25, 42.0])]
    with running(cfg) as (client, model):
        r = client.post("/invocations", json={"instances": rows})
        assert r.status_code == 200, r.text
        served_p = [p["proba_1"] for p in r.json()["predictions"]]
        # one row per request, too: the row-mode path of a single-entity request
        single = [client.post("/invocations", json=row).json()["predictions"][0]["proba_1"] for row in rows[:2]]
        # a 1-row batch and a 6-row batch take different BLAS kernels: equal to a few ulp (tests/support/predictions.py)
        assert_same_predictions(single, served_p[:2])
    log = read_log(store, "odt").to_pandas().sort_values(["request_id", "request_row"]).reset_index(drop=True)
    assert len(log) == len(rows) + 2
    for col in ["stats__trips", "stats__rate", "request__amount", "ratios__ratio", "ratios__big", "ratios__score",
                "per_trip__per_trip", "per_trip__hour"]:
        assert col in log.columns, col  # the transforms' inputs and outputs
    batch = log[log.request_row.isin(range(len(rows)))].groupby("request_id").filter(lambda g: len(g) == len(rows))
    batch = batch.sort_values("request_row").reset_index(drop=True)
    at = batch.event_timestamp[0].to_pydatetime()
    # the online path at the served time gives the logged transform outputs
    online = store.get_online_features(["stats:trips", "stats:rate"] + OUT_REFS, rows, now=at)
    for ref in OUT_REFS:
        assert online.values[ref.split(":")[1]] == batch[ref.replace(":", "__")].tolist(), ref
    expected = served["model"].predict_proba(pd.DataFrame({c: online.values[c] for c in INPUTS}).astype(float))[:, 1]
    assert_same_predictions(served_p, expected)  # BLAS layout: see tests/support/predictions.py
    # replay: the logged request through the training-set path gives the logged outputs, every row
    entity = log[["driver_id", "event_timestamp"]].assign(amount=log.request__amount)
    replay = store.get_historical_features(entity, "svc", full_feature_names=True).to_pandas()
    for ref in OUT_REFS + ["stats:trips", "stats:rate"]:
        col = ref.replace(":", "__")
        assert replay[col].tolist() == log[col].tolist(), col


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.integers(0, 19), st.floats(0, 1e6, allow_nan=False, allow_infinity=False)),
                     min_size=1, max_size=6))
def test_property_served_outputs_equal_online_and_historical(served, rows):
    """The server's transform outputs (read back from its prediction log) equal get_online_features at the served
    time and the training-set path replayed at the logged time, for random requests."""
    store = served["store"]
    model = ServedModel(served["artifact"], store, log_writer_options={"flush_seconds": 3600})
    model.load()
    rid = uuid.uuid4().hex
    req = model.parse({"instances": [{"driver_id": i, "amount": a} for i, a in rows]}, request_id=rid)
    [answer] = model.predict_batch([req])
    assert len(answer["predictions"]) == len(rows)
    assert model.close()
    log = read_log(store, "odt").to_pandas()
    log = log[log.request_id == rid].sort_values("request_row").reset_index(drop=True)
    at = log.event_timestamp[0].to_pydatetime()
    online = store.get_online_features(OUT_REFS, [{"driver_id": i, "amount": a} for i, a in rows], now=at,
                                       full_feature_names=True)
    entity = log[["driver_id", "event_timestamp"]].assign(amount=log.request__amount)
    replay = store.get_historical_features(entity, OUT_REFS, full_feature_names=True).to_pandas()
    for ref in OUT_REFS:
        col = ref.replace(":", "__")
        assert log[col].tolist() == online.values[col] == replay[col].tolist(), col


def test_transform_failures_are_typed_http_errors_naming_transform_and_row(served):
    cfg = ServeConfig(repo=str(served["repo"]), model_dir=str(served["artifact"].path), log_flush_seconds=3600)
    with running(cfg) as (client, model):
        r = client.post("/invocations", json={"instances": [{"driver_id": 1, "amount": 3.0},
                                                            {"driver_id": 2, "amount": -1.0}]})
        assert r.status_code == 500
        assert r.json() == {"error": "TransformError", "transform": "ratios", "row": 1,
                            "message": "transform 'ratios', row 1: raised ValueError: negative amount"}
        r = client.post("/invocations", json={"instances": [{"driver_id": 1, "amount": 3.0}, {"driver_id": 2}]})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "ValidationError" and body["row"] == 1 and body["column"] == "amount"
        assert "transform" in body["message"] and "'amount' is missing" in body["message"]
        assert model.log.pending == 0  # nothing of a failed request is logged


def test_a_registry_with_other_code_for_a_pinned_transform_is_refused(tmp_path):
    t = trained(tmp_path / "repo")
    changed = sk.OnDemandTransform("ratios", source=ratios.source.replace("> 100.0", "> 10.0"), inputs=ratios.inputs,
                                   request=ratios.request, outputs=ratios.outputs)
    t["store"].apply([driver, stats, changed, per_trip])
    cfg = ServeConfig(repo=str(t["repo"]), model_dir=str(t["artifact"].path))
    with running(cfg, ready=False) as (client, model):
        r = client.get("/ping")
        assert r.status_code == 503
        reason = r.json()["reason"]
        assert reason.startswith("TransformMismatch:") and "ratios" in reason
        assert f"registry {changed.hash[:12]} != pinned {ratios.hash[:12]}" in reason
        assert not model.loaded
        assert client.post("/invocations", json={"driver_id": 1, "amount": 1.0}).status_code == 503
    t["store"].apply([driver, stats, ratios, per_trip])  # the pinned code back: the server is ready
    with running(cfg) as (client, model):
        assert client.get("/ping").status_code == 200 and model.loaded
