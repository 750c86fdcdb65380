"""The official SageMaker Python SDK against the local SageMaker (moto's control plane + the local runtime, which runs
the real model server): the credit model deployed as users deploy it, then invoked through the SDK's predictor
(``Endpoint.invoke``, SDK 3's replacement of ``Predictor``; tests.support.sagemaker_sdk) with its JSON, CSV and
JSON Lines serializers and deserializers and the ``Accept`` each asks for. The predictions equal the training-set
path whatever the format, every row is in the prediction log, and what the server refuses (an unsupported
Content-Type, an unsatisfiable Accept) reaches the SDK as SageMaker's ModelError carrying the container's
415/406, with nothing logged. The SDK runs from its own venv (its pins conflict with the project's)."""

from __future__ import annotations

import time
import uuid

import pytest
from tests.serving.test_deploy import models, sagemaker_emulation  # noqa: F401 - `models` is a fixture
from tests.serving.test_serving import credit, in_process  # noqa: F401 - `credit` is a fixture
from tests.support.sagemaker_sdk import ensure_venv, sdk_invoke

from skewless.serving import read_log
from skewless.timeutil import now as utc_now


@pytest.fixture(scope="module")
def sdk_python():
    return ensure_venv()


def _logged(store, loans: list[int], expect: int, timeout: float = 30.0) -> list[int]:
    """The logged rows' loan ids among ``loans``, once ``expect`` of them are in (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [r["loan_id"] for r in read_log(store, "credit").to_pylist() if r["loan_id"] in loans]
        if len(got) >= expect or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_sagemaker_sdk_predictor_json_csv_jsonlines(models, moto_endpoint, sdk_python, tmp_path):  # noqa: F811
    store, loans = models["store"], models["loans"]
    ids = [int(i) for i in loans.loan_id][:14]
    expected = dict(zip(ids, in_process(models, loans.set_index("loan_id").loc[ids].reset_index(), utc_now())))
    a, b, c, d, refused = ids[0:3], ids[3:6], ids[6:9], ids[9:12], ids[12:14]
    with sagemaker_emulation(store, moto_endpoint, tmp_path) as target:
        endpoint = f"creditsdk{uuid.uuid4().hex[:6]}"
        assert target.deploy("credit", 1, endpoint).status == "InService"
        url = target.sm.meta.endpoint_url
        calls = [
            # JSON in, JSON out (the SDK's JSONDeserializer asks Accept: application/json)
            {"serializer": "json", "deserializer": "json", "data": {"instances": [{"loan_id": i} for i in a]}},
            # CSV in (one loan id per row: the model's one request column), JSON out
            {"serializer": "csv", "deserializer": "json", "data": [[i] for i in b]},
            # CSV in, CSV out: one line per row, proba_0,proba_1
            {"serializer": "csv", "deserializer": "csv", "data": [[i] for i in c]},
            # JSON Lines in and out, as batch transform's SplitType=Line mini-batches send it
            {"serializer": "jsonlines", "deserializer": "jsonlines", "data": [{"loan_id": i} for i in d]},
            # refused: an Accept the server cannot answer (406), a Content-Type it cannot read (415)
            {"serializer": "json", "deserializer": "json", "accept": "text/html",
             "data": {"instances": [{"loan_id": refused[0]}]}},
            {"serializer": "npy", "deserializer": "json", "data": [[refused[1]]]},  # application/x-npy
        ]
        out = sdk_invoke(sdk_python, url, endpoint, calls)
        target.delete(endpoint)
    assert out["status"] == "InService"
    r = out["results"]
    assert all(x["ok"] for x in r[:4]), r
    assert r[0]["content_type"].startswith("application/json")
    assert [p["proba_1"] for p in r[0]["body"]["predictions"]] == pytest.approx([expected[i] for i in a])
    assert r[0]["body"]["version"] == 1
    assert [p["proba_1"] for p in r[1]["body"]["predictions"]] == pytest.approx([expected[i] for i in b])
    assert r[2]["content_type"].startswith("text/csv")
    assert [float(row[1]) for row in r[2]["body"]] == pytest.approx([expected[i] for i in c])
    assert all(len(row) == 2 and float(row[0]) + float(row[1]) == pytest.approx(1.0) for row in r[2]["body"])
    assert r[3]["content_type"].startswith("application/jsonlines")
    assert [p["proba_1"] for p in r[3]["body"]] == pytest.approx([expected[i] for i in d])
    # the container's 406/415 reach the SDK as SageMaker reports a container's 4xx: ModelError, original status
    assert (r[4]["ok"], r[4]["code"], r[4]["original_status"]) == (False, "ModelError", 406), r[4]
    assert "NotAcceptable" in r[4]["original_message"]
    assert (r[5]["ok"], r[5]["code"], r[5]["original_status"]) == (False, "ModelError", 415), r[5]
    assert "UnsupportedMediaType" in r[5]["original_message"]
    served = a + b + c + d
    logged = _logged(store, served + refused, len(served))
    assert sorted(logged) == sorted(served)
