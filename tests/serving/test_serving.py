"""Model serving end to end on real parts: the credit-scoring repo -> training set -> scikit-learn model ->
package -> registry -> a real uvicorn server on loopback (SQLite and Redis online stores) -> predictions, and the
prediction log read back and joined by training-set retrieval."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest
import uvicorn

import skewless as sk
from skewless.demo import _model
from skewless.serving import ModelRegistry, package_model, read_log
from skewless.serving.server import ServeConfig, build, uvicorn_config
from skewless.timeutil import now as utc_now

from skewless.sample_repo import credit_repo  # the credit repo with a loan -> zipcode view, shared with the benchmark
from tests.support.predictions import assert_same_predictions

SERVICE = "credit_model_v1"
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(cfg: ServeConfig, *, ready: bool = True):
    """A real uvicorn server in a thread on a free loopback port; a clean shutdown on exit."""
    cfg.host, cfg.port = "127.0.0.1", cfg.port or free_port()
    _, model, app = build(cfg)
    server = uvicorn.Server(uvicorn_config(app, cfg))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # With a token configured every route but the health checks needs it: the client carries it.
    client = httpx.Client(base_url=f"http://127.0.0.1:{cfg.port}", timeout=30,
                          headers={"Authorization": cfg.token} if cfg.token else None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/ping" if "sagemaker" in cfg.contracts() else "/ready").status_code == 200 or not ready:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.05)
        yield client, model
    finally:
        client.close()
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive()


def trained_credit(repo: Path, *, sample: int, random_state: int) -> dict:
    """The credit repo, a model trained on its training set, packaged, registered and promoted to production;
    plus ``sample`` loans to invoke with."""
    store = credit_repo(repo)
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", "loan_status"])
    job = store.get_historical_features(loans, SERVICE)
    train = job.to_pandas()
    features = [r.split(":")[1] for r in job.features]
    model = _model().fit(train[features], train["loan_status"])
    art = package_model(model, name="credit", store=store, feature_service=SERVICE, training_set=job,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"}, description="credit default")
    reg = ModelRegistry(store)
    mv = reg.register(art, message="first")
    reg.promote("credit", mv.version, "production")
    picks = loans.drop_duplicates("loan_id").sample(sample, random_state=random_state)
    return {"repo": repo, "store": store, "model": model, "features": features, "job": job, "loans": picks,
            "artifact": art}


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("serving") / "repo", sample=40, random_state=3)


def in_process(credit, rows: pd.DataFrame, at) -> list[float]:
    """The training-set path: historical features at ``at`` for (loan_id, zipcode), predicted in process."""
    entity = rows[["loan_id", "zipcode"]].reset_index(drop=True).assign(event_timestamp=at)
    hist = credit["store"].get_historical_features(entity, SERVICE).to_pandas()
    return list(credit["model"].predict_proba(hist[credit["features"]])[:, 1])


def test_package_manifest_records_service_signature_lineage_and_requirements(credit):
    m = credit["artifact"].manifest
    assert m.flavor == "sklearn" and m.feature_service == SERVICE
    assert [i["name"] for i in m.inputs] == credit["features"]  # the order the model was fitted on
    assert m.request_keys == {"loan_id": "Int64"} and m.key_lookups == {"zipcode": "loan_zipcode:zipcode"}
    assert [o["name"] for o in m.outputs] == ["proba_0", "proba_1"]
    assert m.training["snapshot"] == credit["job"].snapshot
    assert any(r.startswith("scikit-learn==") for r in m.requirements)
    # two stages: loan views by loan_id, then zipcode_features by the zipcode read in the first
    assert [[v.name for v, _ in st] for st in m.read_stages()] == [["loan_features", "loan_zipcode"],
                                                                   ["zipcode_features"]]


def test_skew_free_serving_and_prediction_log(credit):
    """Invoke with loan ids only; predictions equal the training-set path at the same time; the log, after a
    clean shutdown, holds every row and replays through training-set retrieval with identical inputs."""
    store, loans = credit["store"], credit["loans"]
    cfg = ServeConfig(repo=str(credit["repo"]), model="credit", stage="production", contract="both", token=TOKEN,
                      log_flush_seconds=3600)  # nothing is flushed before shutdown: the shutdown must do it
    ids = [int(i) for i in loans.loan_id]
    with running(cfg) as (client, model):
        assert model.version == 1
        r = client.post("/invocations", json={"instances": [{"loan_id": i} for i in ids[:30]]},
                        headers={"x-request-id": "batch-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["request_id"] == "batch-1" and body["model"] == "credit" and body["version"] == 1
        served = [p["proba_1"] for p in body["predictions"]]
        eas = [client.post("/api/predict/credit", json={"loan_id": i}, headers={"Authorization": TOKEN}).json()
               for i in ids[30:]]
        served += [e["predictions"][0]["proba_1"] for e in eas]
        assert model.log.written == 0 and model.log.pending == len(ids)
    log = read_log(store, "credit").to_pandas()
    assert len(log) == len(ids) and sorted(log.loan_id) == sorted(ids)
    assert set(log.model_version) == {1} and (log.loan_features__status == "PRESENT").all()
    log = log.sort_values(["request_id", "request_row"]).reset_index(drop=True)
    # same time as served: the log's event_timestamp is the time of the online read
    at = log.event_timestamp.max()
    assert log.event_timestamp.min() >= at - pd.Timedelta(minutes=5)
    order = {i: n for n, i in enumerate(ids)}
    by_id = loans.set_index("loan_id").loc[ids].reset_index()
    expected = in_process(credit, by_id, at)
    assert_same_predictions(served, expected)  # same inputs, same model (BLAS layout: tests/support/predictions.py)
    assert list(log.zipcode) == [int(by_id.zipcode[order[i]]) for i in log.loan_id]
    # replay: the logged inputs equal historical retrieval at each row's logged time
    replay = store.get_historical_features(log[["loan_id", "zipcode", "event_timestamp"]], SERVICE,
                                           full_feature_names=True).to_pandas()
    for ref in credit["artifact"].manifest.feature_refs:
        col = ref.replace(":", "__")
        assert replay[col].astype(object).where(replay[col].notna(), None).tolist() == \
            log[col].astype(object).where(log[col].notna(), None).tolist(), col
    # the log is a feature view: training-set retrieval joins the logged outputs onto later entity rows
    later = log[["loan_id", "event_timestamp"]].assign(event_timestamp=at + pd.Timedelta(seconds=1))
    joined = store.get_historical_features(later, ["predictions_credit:output__proba_1",
                                                   "predictions_credit:model_version"]).to_pandas()
    assert joined.output__proba_1.tolist() == log.output__proba_1.tolist()
    assert sorted(log.output__proba_1) == sorted(served)


def test_contracts_errors_docs_and_metrics(credit):
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="both",
                      token=TOKEN)
    loan = int(credit["loans"].loan_id.iloc[0])
    with running(cfg) as (c, model):
        assert model.version == 0  # an artifact folder that did not come from the registry
        assert c.get("/live").status_code == 200 and c.get("/ready").json()["status"] == "ready"
        # PAI-EAS: token checked, service name checked
        assert c.post("/api/predict/credit", json={"loan_id": loan}, headers={"Authorization": ""}
                      ).status_code == 401
        assert c.post("/api/predict/credit", json={"loan_id": loan},
                      headers={"Authorization": "wrong"}).status_code == 401
        ok = c.post("/api/predict/credit", json={"loan_id": loan}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
        assert c.post("/api/predict/other", json={"loan_id": loan}, headers={"Authorization": TOKEN}
                      ).status_code == 404
        assert c.get("/api/predict/credit", headers={"Authorization": TOKEN}).status_code == 200
        # bad input -> 400 with the reason; a value that does not fit its field -> 422 naming it
        bad = c.post("/invocations", content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"] == "ValidationError"
        missing = c.post("/invocations", json={"instances": [{"loan_id": loan}, {"zipcode": 1}]}).json()
        assert missing["column"] == "loan_id" and missing["row"] == 1 and "lacks entity key" in missing["message"]
        wrong = c.post("/invocations", json={"loan_id": "abc"})
        assert wrong.status_code == 422 and "not a valid Int64" in wrong.json()["message"]
        assert c.post("/invocations", json=[]).status_code == 400
        # an unknown loan is not an error: features read as NOT_FOUND (nulls), like get_online_features
        unknown = c.post("/invocations", json={"loan_id": -1})
        assert unknown.status_code == 200
        doc = c.get("/openapi.json").json()
        assert {"/invocations", "/ping", "/api/predict/credit", "/metrics"} <= set(doc["paths"])
        rows = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]["anyOf"][1]
        assert rows["items"]["required"] == ["loan_id"]
        assert "swagger-ui" in c.get("/docs").text
        metrics = c.get("/metrics").text
        assert 'skewless_requests_total{route="sagemaker",status="400"} 2.0' in metrics
        assert 'skewless_requests_total{route="eas",status="401"} 2.0' in metrics
        assert "skewless_batch_rows_bucket" in metrics and 'skewless_model_info{model="credit",version="0"}' in metrics
    assert {r["loan_id"] for r in read_log(credit["store"], "credit").to_pylist()} >= {loan, -1}


def test_predict_timeout_from_the_environment_or_an_override(monkeypatch):
    monkeypatch.setenv("SKEWLESS_PREDICT_TIMEOUT", "2.5")
    assert ServeConfig.from_env().predict_timeout == 2.5
    assert ServeConfig.from_env(predict_timeout=7.0).predict_timeout == 7.0  # `skewless model serve --predict-timeout`
    assert ServeConfig.from_env(predict_timeout=0.0).predict_timeout is None  # 0: no limit
    monkeypatch.setenv("SKEWLESS_PREDICT_TIMEOUT", "0")
    assert ServeConfig.from_env().predict_timeout is None
    monkeypatch.delenv("SKEWLESS_PREDICT_TIMEOUT")
    assert ServeConfig.from_env().predict_timeout == 60.0


def test_contract_ports_and_token_requirement(credit, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9123")
    monkeypatch.delenv("SKEWLESS_PORT", raising=False)
    assert ServeConfig(contract="sagemaker").resolved_port() == 9123
    assert ServeConfig(contract="eas").resolved_port() == 8000
    with pytest.raises(sk.ConfigError, match="token"):
        build(ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="eas"))
    # SageMaker only: no EAS route is mounted
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="sagemaker")
    with running(cfg) as (c, _):
        assert c.post("/api/predict/credit", json={"loan_id": 1}).status_code == 404


def test_micro_batching_answers_each_concurrent_request_its_own_rows(credit):
    ids = [int(i) for i in credit["loans"].loan_id][:24]
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path))
    with running(cfg) as (c, model):
        url = str(c.base_url)

        def call(i):
            with httpx.Client(base_url=url) as cc:
                return i, cc.post("/invocations", json={"loan_id": i}).json()["predictions"][0]["proba_1"]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(12) as pool:
            got = dict(pool.map(call, ids * 3))
        one = c.post("/invocations", json={"instances": [{"loan_id": i} for i in ids]}).json()["predictions"]
        assert [got[i] for i in ids] == [p["proba_1"] for p in one]
        metrics = c.get("/metrics").text
        assert "skewless_batch_requests_count" in metrics


def test_redis_online_store_same_predictions(credit, redis_url, tmp_path):
    prefix = f"serving{os.getpid()}"
    store = credit_repo(tmp_path / "redis_repo",
                        online_yaml=f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}")
    assert type(store.online).__name__ == "RedisOnlineStore"
    cfg = ServeConfig(repo=str(tmp_path / "redis_repo"), model_dir=str(credit["artifact"].path))
    rows = credit["loans"].head(10)
    with running(cfg) as (c, _):
        served = [p["proba_1"] for p in c.post("/invocations", json=[{"loan_id": int(i)} for i in rows.loan_id]
                                               ).json()["predictions"]]
    assert_same_predictions(served, in_process(credit, rows, utc_now()))


def wait_ready(client: httpx.Client, proc: subprocess.Popen, within: float = 60) -> None:
    """Until the server process answers /ping 200 (it must not exit meanwhile)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if client.get("/ping").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)


@contextlib.contextmanager
def entry_point(env: dict, port: int, *, stop_timeout: float = 60):
    """`python -m skewless.serving serve` (what `<image> serve` runs) as a child process configured by ``env``,
    once ready: yields ``.client`` and ``.proc``; on leaving, SIGTERM and its stderr in ``.err`` (killed if the
    block failed or the server does not stop in time)."""
    proc = subprocess.Popen([sys.executable, "-m", "skewless.serving", "serve"], env=env, stderr=subprocess.PIPE,
                            text=True)
    run = SimpleNamespace(proc=proc, err="")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as run.client:
            wait_ready(run.client, proc)
            yield run
        proc.send_signal(signal.SIGTERM)
        run.err = proc.communicate(timeout=stop_timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_image_entry_point_flushes_the_log_on_sigterm(credit, tmp_path):
    """`python -m skewless.serving serve` (what `<image> serve` runs), configured by the environment only."""
    port = free_port()
    env = {**os.environ, "SKEWLESS_REPO": str(credit["repo"]), "SKEWLESS_MODEL_DIR": str(credit["artifact"].path),
           "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_LOG_FLUSH_SECONDS": "3600"}
    before = len(read_log(credit["store"], "credit"))
    with entry_point(env, port) as run:
        for i in [int(i) for i in credit["loans"].loan_id][:15]:
            assert run.client.post("/invocations", json={"loan_id": i}).status_code == 200
    # uvicorn re-raises the signal once shut down cleanly, as a process killed by SIGTERM would end
    assert run.proc.returncode in (0, -signal.SIGTERM), run.err
    assert '"prediction_log_complete": true' in run.err  # structured (JSON) logs
    assert len(read_log(credit["store"], "credit")) == before + 15
