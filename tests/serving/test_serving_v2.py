"""The Open Inference Protocol v2 (serving/v2.py) on a real server, driven by an official v2 client
(``tritonclient.http``, JSON and binary tensors) and by raw requests for what a client would refuse to send: the
same predictions as the SageMaker route for the same rows, each row logged once, the protocol's error body with
400 for bad tensors, 404 for another model or version, 401 without the token (nothing predicted or logged)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import httpx
import numpy as np
import pytest
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from tritonclient.utils import InferenceServerException

import skewless as sk
from skewless.sample_repo import credit_repo
from skewless.serving import package_model, read_log
from skewless.serving.server import ServeConfig
from skewless.serving.settings import parse_contracts
from tests.serving.test_serving import TOKEN, running, trained_credit
from tests.serving.test_serving_registry import small_repo
from tests.support import kserve_client


def auth() -> dict:
    """A fresh header dict per call: tritonclient's infer adds its own headers to the dict it is given."""
    return {"Authorization": TOKEN}


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("serving_v2") / "repo", sample=12, random_state=5)


def client(http: httpx.Client) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=str(http.base_url).removeprefix("http://").rstrip("/"))


def loan_input(ids: list[int], binary: bool) -> triton.InferInput:
    t = triton.InferInput("loan_id", [len(ids)], "INT64")
    t.set_data_from_numpy(np.array(ids, dtype=np.int64), binary_data=binary)
    return t


def test_tritonclient_predicts_as_the_sagemaker_route_and_each_row_is_logged_once(credit, redis_url, tmp_path):
    prefix = f"servingv2{os.getpid()}"
    store = credit_repo(tmp_path / "redis_repo", online_yaml=f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}")
    assert type(store.online).__name__ == "RedisOnlineStore"
    cfg = ServeConfig(repo=str(tmp_path / "redis_repo"), model_dir=str(credit["artifact"].path),
                      contract="sagemaker,v2", token=TOKEN, log_flush_seconds=3600)
    ids = [int(i) for i in credit["loans"].loan_id]
    with running(cfg) as (http, model):
        c = client(http)
        assert c.is_server_live() and c.is_server_ready()  # the health checks need no token
        assert c.is_model_ready("credit", headers=auth()) and c.is_model_ready("credit", "0", headers=auth())
        meta = c.get_model_metadata("credit", headers=auth())
        assert meta["name"] == "credit" and meta["versions"] == ["0"]
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("loan_id", "INT64", [-1])]
        assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [("proba_0", "FP64"), ("proba_1", "FP64")]
        assert c.get_server_metadata(headers=auth())["extensions"] == ["binary_tensor_data"]

        sagemaker = http.post("/invocations", json=[{"loan_id": i} for i in ids], headers={"x-request-id": "sm"})
        assert sagemaker.status_code == 200, sagemaker.text
        expected = [p["proba_1"] for p in sagemaker.json()["predictions"]]
        # JSON tensors, one output asked for in JSON
        res = c.infer("credit", [loan_input(ids, binary=False)], request_id="v2-json", headers=auth(),
                      outputs=[triton.InferRequestedOutput("proba_1", binary_data=False)])
        doc = res.get_response()
        assert doc["model_name"] == "credit" and doc["model_version"] == "0" and doc["id"] == "v2-json"
        assert [o["name"] for o in doc["outputs"]] == ["proba_1"] and "data" in doc["outputs"][0]
        assert res.as_numpy("proba_1").tolist() == expected  # exact: the same rows through the same path
        assert doc["parameters"]["missing_rows"] == 0
        # the client's defaults: binary input tensors, every output in binary, a version in the path
        res = c.infer("credit", [loan_input(ids, binary=True)], model_version="0", request_id="v2-bin",
                      headers=auth())
        assert res.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 8 * len(ids)
        assert res.as_numpy("proba_1").tolist() == expected
        assert (res.as_numpy("proba_0") + res.as_numpy("proba_1") == pytest.approx(1.0))
        # shape [N, 1], nested data, a request id from the header when the body has none
        raw = http.post("/v2/models/credit/infer", headers={"x-request-id": "v2-nested"}, json={"inputs": [
            {"name": "loan_id", "datatype": "INT64", "shape": [len(ids), 1], "data": [[i] for i in ids]}]})
        assert raw.status_code == 200, raw.text
        assert raw.json()["id"] == "v2-nested"
        assert raw.json()["outputs"][1]["data"] == expected

        # without the token, or a wrong one: 401 in the protocol's shape, nothing predicted
        for headers in (None, {"Authorization": "wrong"}):
            with pytest.raises(InferenceServerException) as err:
                c.infer("credit", [loan_input(ids, binary=True)], request_id="denied", headers=headers)
            assert err.value.status() == "401" and "token" in err.value.message()
        with pytest.raises(InferenceServerException) as err:
            c.get_model_metadata("credit")
        assert err.value.status() == "401"
        assert model.log.pending == 4 * len(ids)  # sm, v2-json, v2-bin, v2-nested
        metrics = http.get("/metrics").text
        assert 'skewless_requests_total{route="v2",status="200"} 3.0' in metrics
        assert 'skewless_requests_total{route="v2",status="401"} 3.0' in metrics
    log = read_log(store, "credit").to_pandas()
    assert sorted(log.request_id.unique()) == ["sm", "v2-bin", "v2-json", "v2-nested"]
    for rid, rows in log.groupby("request_id"):
        rows = rows.sort_values("request_row")
        assert rows.loan_id.tolist() == ids, rid  # each row once, in request order
        assert rows.output__proba_1.tolist() == expected, rid


def test_bad_tensors_are_400_and_another_model_or_version_404_in_the_protocol_shape(credit):
    # the registered version (1, production): its number is the protocol's model version
    cfg = ServeConfig(repo=str(credit["repo"]), model="credit", stage="production", contract="sagemaker,v2",
                      max_body_bytes=64 * 1024)
    loan = int(credit["loans"].loan_id.iloc[0])
    ok = {"name": "loan_id", "datatype": "INT64", "shape": [1], "data": [loan]}
    bad = {
        "wrong datatype": {"inputs": [{**ok, "datatype": "FP64", "data": [float(loan)]}]},
        "a string for an integer": {"inputs": [{**ok, "datatype": "BYTES", "data": [str(loan)]}]},
        "a value not of its datatype": {"inputs": [{**ok, "data": [True]}]},
        "more values than the shape": {"inputs": [{**ok, "shape": [1], "data": [loan, loan]}]},
        "a matrix": {"inputs": [{**ok, "shape": [1, 2], "data": [loan, loan]}]},
        "no shape": {"inputs": [{k: v for k, v in ok.items() if k != "shape"}]},
        "no data": {"inputs": [{k: v for k, v in ok.items() if k != "data"}]},
        "an unknown input": {"inputs": [{**ok, "name": "zipcode"}]},  # a lookup key, read from a view: no input
        "no inputs": {"inputs": []},
        "no rows": {"inputs": [{**ok, "shape": [0], "data": []}]},
        "an input twice": {"inputs": [ok, ok]},
        "an unknown output": {"inputs": [ok], "outputs": [{"name": "proba_9"}]},
        "a non-string id": {"inputs": [ok], "id": 7},
        "rows, not tensors": [{"loan_id": loan}],
        "binary size beyond the body": {"inputs": [{**{k: v for k, v in ok.items() if k != "data"},
                                                    "parameters": {"binary_data_size": 8}}]},
    }
    with running(cfg) as (http, model):
        assert model.version == 1
        for case, body in bad.items():
            r = http.post("/v2/models/credit/infer", json=body)
            assert r.status_code == 400, (case, r.status_code, r.text)
            doc = r.json()
            assert isinstance(doc["error"], str) and doc["error"] and doc["error_type"] == "ValidationError", case
        assert "datatype 'FP64'" in http.post("/v2/models/credit/infer", json=bad["wrong datatype"]).json()["error"]
        assert "no input 'zipcode'" in http.post("/v2/models/credit/infer", json=bad["an unknown input"]).json()["error"]
        r = http.post("/v2/models/credit/infer", content=b"{not json")
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        # binary data that does not fill its tensor (8 bytes are one INT64, the shape says two)
        header = b'{"inputs":[{"name":"loan_id","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":8}}]}'
        r = http.post("/v2/models/credit/infer", content=header + np.int64(loan).tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header))})
        assert r.status_code == 400 and "8 bytes of binary data for 2 INT64" in r.json()["error"], r.text
        # a value beyond its tensor's datatype is a malformed tensor
        r = http.post("/v2/models/credit/infer", json={"inputs": [{**ok, "data": [2**63]}]})
        assert r.status_code == 400 and "is not a INT64 value" in r.json()["error"], r.text
        # a body past the limit: 413 before it is read whole, the connection closed
        many = [loan] * 20_000
        r = http.post("/v2/models/credit/infer", json={"inputs": [{**ok, "shape": [len(many)], "data": many}]})
        assert r.status_code == 413 and r.json()["error_type"] == "PayloadTooLarge" and "bytes" in r.json()["error"]
        assert r.headers["connection"] == "close"
        # another model, another version: 404, in the protocol's shape, from the official client too
        for path in ("/v2/models/other/infer", "/v2/models/credit/versions/3/infer"):
            r = http.post(path, json={"inputs": [ok]})
            assert r.status_code == 404 and "credit" in r.json()["error"] and r.json()["error_type"] == "NotFoundError"
        c = client(http)
        for call in (lambda: c.get_model_metadata("other"), lambda: c.get_model_metadata("credit", "2"),
                     lambda: c.infer("other", [loan_input([loan], binary=True)])):
            with pytest.raises(InferenceServerException) as err:
                call()
            assert err.value.status() == "404" and "no model" in err.value.message()
        assert not c.is_model_ready("other")
        with pytest.raises(InferenceServerException) as err:  # the client's own tensor of the wrong datatype
            c.infer("credit", [triton.InferInput("loan_id", [1], "FP32").set_data_from_numpy(
                np.array([1.0], dtype=np.float32))])
        assert err.value.status() == "400" and "the model's Int64 takes" in err.value.message()
        assert model.log.pending + model.log.written == 0  # nothing bad was predicted or logged
        # and the server still predicts, under its version too
        assert c.get_model_metadata("credit", "1")["versions"] == ["1"] and c.is_model_ready("credit", "1")
        res = c.infer("credit", [loan_input([loan], binary=True)], model_version="1")
        assert res.get_response()["model_version"] == "1" and res.as_numpy("proba_1").shape == (1,)


def test_kserve_inference_rest_client_predicts_as_the_sagemaker_route(credit):
    """KServe's own v2 client, from its venv (it pins psutil<6): health, JSON and binary tensors, the protocol's
    error for a wrong datatype and for a missing token; the rows logged once each."""
    python = kserve_client.ensure_venv()
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="sagemaker,v2",
                      token=TOKEN, log_flush_seconds=3600)
    ids = [int(i) for i in credit["loans"].loan_id]
    with running(cfg) as (http, model):
        expected = [p["proba_1"] for p in http.post("/invocations", json=[{"loan_id": i} for i in ids],
                                                    headers={"x-request-id": "sm"}).json()["predictions"]]
        loans = {"name": "loan_id", "datatype": "INT64", "data": ids}
        out = kserve_client.kserve_session(python, str(http.base_url), "credit", [
            {"id": "ks-json", "inputs": [loans], "outputs": ["proba_1"]},
            {"id": "ks-bin", "inputs": [{**loans, "binary": True}]},
            {"id": "ks-bad", "inputs": [{**loans, "datatype": "FP64", "data": [float(i) for i in ids]}]}], TOKEN)
        assert out["live"] and out["ready"] and out["model_ready"]
        ok_json, ok_bin, bad = out["results"]
        assert ok_json["status"] == 200 and ok_json["id"] == "ks-json" and ok_json["model_name"] == "credit"
        assert list(ok_json["outputs"]) == ["proba_1"] and ok_json["outputs"]["proba_1"] == expected
        assert ok_bin["outputs"]["proba_1"] == expected and set(ok_bin["outputs"]) == {"proba_0", "proba_1"}
        assert bad["status"] == 400 and "datatype 'FP64'" in bad["body"]["error"]
        denied = kserve_client.kserve_session(python, str(http.base_url), "credit", [
            {"id": "ks-denied", "inputs": [loans]}])
        assert not denied["model_ready"] and denied["results"][0]["status"] == 401
        assert "token" in denied["results"][0]["body"]["error"]
    log = read_log(credit["store"], "credit").to_pandas()
    log = log[log.request_id.isin(["sm", "ks-json", "ks-bin", "ks-bad", "ks-denied"])]
    assert log.groupby("request_id").loan_id.apply(list).to_dict() == {"sm": ids, "ks-json": ids, "ks-bin": ids}


def test_v2_readiness_says_why_and_an_answer_says_which_rows_lacked_features(credit, tmp_path):
    """A store that answers but holds none of the model's rows: not ready (503 with /ready's reason; live stays
    true), and a prediction still answers (policy serve), its parameters saying what was missing."""
    shutil.copytree(credit["repo"], tmp_path / "repo")
    conf = tmp_path / "repo" / "skewless.yaml"
    conf.write_text(conf.read_text().replace("sqlite:///data/online.db", "sqlite:///data/empty_online.db"))
    cfg = ServeConfig(repo=str(tmp_path / "repo"), model_dir=str(credit["artifact"].path), contract="v2")
    with running(cfg, ready=False) as (http, model):
        deadline = time.monotonic() + 60
        while "holds no rows" not in http.get("/ready").json().get("reason", ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c = client(http)
        assert c.is_server_live() and not c.is_server_ready() and not c.is_model_ready("credit")
        r = http.get("/v2/models/credit/ready")
        assert r.status_code == 503 and not r.json()["ready"] and "holds no rows" in r.json()["reason"]
        res = c.infer("credit", [loan_input([int(credit["loans"].loan_id.iloc[0])], binary=True)]).get_response()
        assert res["parameters"]["missing_rows"] == 1
        assert json.loads(res["parameters"]["feature_status"])["views"]["loan_features"] == {"NOT_FOUND": 1}


MODEL = '''
class Pricer:
    """A Python model over a feature and three request-time values of three dtypes."""

    outputs = [("score", "Float64"), ("label", "String"), ("flagged", "Bool")]

    def load(self, path):
        pass

    def predict(self, frame):
        score = frame["income"] + frame["amount"].fillna(0) + frame["rush"].fillna(False).astype(float) * 100
        return {"score": score.tolist(), "label": [f"{t}-{int(s)}" for t, s in zip(frame["tag"].fillna("none"), score)],
                "flagged": (score > 50).tolist()}
'''


@pytest.fixture(scope="module")
def pricer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v2_pricer")
    store, job = small_repo(tmp / "repo")
    (tmp / "pricer_mod.py").write_text(MODEL)
    sys.path.insert(0, str(tmp))
    try:
        import pricer_mod
    finally:
        sys.path.remove(str(tmp))
    art = package_model(pricer_mod.Pricer, name="pricer", store=store, feature_service="scoring", training_set=job,
                        request_fields=[sk.Field("amount", sk.Float64), sk.Field("rush", sk.Bool),
                                        sk.Field("tag", sk.String)])
    return store, ServeConfig(repo=str(tmp / "repo"), model_dir=str(art.path), contract="v2")


def test_bytes_bool_and_float_tensors_and_optional_fields_on_a_v2_only_server(pricer):
    store, cfg = pricer
    with running(cfg, ready=False) as (http, model):
        c = client(http)
        deadline = time.monotonic() + 60
        while not c.is_server_ready():  # no /ping on a v2-only server: the protocol's own readiness
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.post("/invocations", json={"driver_id": 1}).status_code == 404  # no SageMaker route mounted
        meta = c.get_model_metadata("pricer")
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("driver_id", "INT64"), ("amount", "FP64"), ("rush", "BOOL"), ("tag", "BYTES")]
        assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
            ("score", "FP64"), ("label", "BYTES"), ("flagged", "BOOL")]
        for binary in (False, True):
            inputs = [triton.InferInput("driver_id", [3], "INT32"), triton.InferInput("amount", [3], "FP32"),
                      triton.InferInput("rush", [3], "BOOL"), triton.InferInput("tag", [3], "BYTES")]
            inputs[0].set_data_from_numpy(np.array([1, 2, 3], dtype=np.int32), binary_data=binary)
            inputs[1].set_data_from_numpy(np.array([1.5, 0.0, 2.0], dtype=np.float32), binary_data=binary)
            inputs[2].set_data_from_numpy(np.array([False, True, False]), binary_data=binary)
            inputs[3].set_data_from_numpy(np.array(["a", "bé", "c"], dtype=object), binary_data=binary)
            res = c.infer("pricer", inputs, outputs=[triton.InferRequestedOutput(n, binary_data=binary)
                                                     for n in ("score", "label", "flagged")])
            assert res.as_numpy("score").tolist() == [11.5, 120.0, 32.0]
            assert [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("label").tolist()] == [
                "a-11", "bé-120", "c-32"]
            assert res.as_numpy("flagged").tolist() == [False, True, False]
        # a request-time field may be left out (null, as a member left out of a JSON row); a key may not
        r = http.post("/v2/models/pricer/infer", json={"inputs": [
            {"name": "driver_id", "datatype": "INT64", "shape": [1], "data": [2]}]})
        assert r.status_code == 200 and [o["data"] for o in r.json()["outputs"]] == [[20.0], ["none-20"], [False]]
        r = http.post("/v2/models/pricer/infer", json={"inputs": [
            {"name": "amount", "datatype": "FP64", "shape": [1], "data": [1.0]}]})
        assert r.status_code == 400 and "driver_id" in r.json()["error"]
        # mismatched shapes between inputs
        r = http.post("/v2/models/pricer/infer", json={"inputs": [
            {"name": "driver_id", "datatype": "INT64", "shape": [2], "data": [1, 2]},
            {"name": "amount", "datatype": "FP64", "shape": [1], "data": [1.0]}]})
        assert r.status_code == 400 and "has 1 rows; the inputs before it 2" in r.json()["error"]
        # a NaN (binary data can hold one, JSON cannot) is no value of a Float64 field
        key, nan = triton.InferInput("driver_id", [1], "INT64"), triton.InferInput("amount", [1], "FP64")
        key.set_data_from_numpy(np.array([1]))
        nan.set_data_from_numpy(np.array([np.nan]))
        with pytest.raises(InferenceServerException) as err:
            c.infer("pricer", [key, nan])
        assert err.value.status() == "400" and "not a finite number" in err.value.message()
    log = read_log(store, "pricer").to_pandas()
    assert len(log) == 3 + 3 + 1
    assert sorted(log.request__tag.fillna("-")) == ["-", "a", "a", "bé", "bé", "c", "c"]


def test_contract_lists_in_the_environment_and_the_openapi_document(credit, monkeypatch):
    assert parse_contracts("both") == ("sagemaker", "eas")
    assert parse_contracts("v2, sagemaker") == ("v2", "sagemaker") and parse_contracts("v2") == ("v2",)
    for bad in ("kserve", "sagemaker,kserve", "", "sagemaker,,v2", "both,v2"):
        with pytest.raises(sk.ConfigError, match="SKEWLESS_CONTRACT"):
            ServeConfig(contract=bad).contracts()
    monkeypatch.setenv("SKEWLESS_CONTRACT", "eas,v2")
    monkeypatch.setenv("SKEWLESS_PORT", "8123")
    cfg = ServeConfig.from_env()
    assert cfg.contracts() == ("eas", "v2") and cfg.resolved_port() == 8123  # EAS's port without SageMaker's
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="sagemaker,v2",
                      token=TOKEN)
    with running(cfg) as (http, _):
        doc = http.get("/openapi.json").json()
        assert {"/v2/health/ready", "/v2/models/credit/infer", "/v2/models/credit/versions/0/infer",
                "/v2/models/credit"} <= set(doc["paths"])
        infer = doc["paths"]["/v2/models/credit/infer"]["post"]
        assert infer["security"] == [{"token": []}] and {"400", "401", "404"} <= set(infer["responses"])
        tensor = doc["components"]["schemas"]["V2InferRequest"]["properties"]["inputs"]["items"]
        assert tensor["properties"]["name"]["enum"] == ["loan_id"]
        assert "security" not in doc["paths"]["/v2/health/ready"]["get"]
        # schemathesis on the v2 routes of that document: valid and invalid requests, no 5xx, every status and
        # body as documented (a request the schema allows may still be refused: it cannot say "the same N for
        # every input", so positive_data_acceptance is not asked for)
        schema = schemathesis.openapi.from_url(f"{http.base_url}/openapi.json", headers=auth())
        for method, path, mode, examples in [("POST", "/v2/models/credit/infer", "positive", 60),
                                             ("POST", "/v2/models/credit/infer", "negative", 60),
                                             ("GET", "/v2/models/credit", "positive", 3),
                                             ("GET", "/v2/health/ready", "positive", 3)]:
            operation = schema[path][method]

            @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(headers=auth(), checks=[not_a_server_error, status_code_conformance,
                                                             content_type_conformance, response_schema_conformance])
            run()
        assert 'skewless_requests_total{route="v2",status="400"}' in http.get("/metrics").text  # they got there
