"""A wrong or missing credential on every protected route of every contract: 401 with the typed error body, and
nothing predicted or logged. One real server runs both contracts with a token; each route (SageMaker
``/invocations``, the EAS route ``POST``/``GET /api/predict/<service>``, ``/metrics``, ``/openapi.json``,
``/docs``) is called with no ``Authorization``, a wrong raw token, a wrong ``Bearer`` token and a wrong signature
(the ``EAS <signature>`` form, signed with a wrong token); the same calls with the right token succeed (so the
401s are the credential's doing), and afterwards the prediction log holds the right calls' rows and none of the
refused ones'.

Clients: on the EAS route, Alibaba's official ``eas_prediction`` client itself sends the wrong token (signed, its
default, and raw with ``custom_url``; tests.support.eas_client). The SageMaker route is called with plain HTTP: the
official clients (boto3 ``sagemaker-runtime``, the SageMaker Python SDK) cannot send an ``Authorization`` token at
all: SageMaker authenticates callers with IAM (SigV4) before InvokeEndpoint reaches the container and does not
forward the header, so on SageMaker the server runs without a token; the token on ``/invocations`` guards a server
that shares its port with the EAS contract or is reached directly."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from tests.serving.test_serving import TOKEN, credit, running  # noqa: F401 - `credit` is a fixture
from tests.serving.test_serving_eas_client import _signed
from tests.support.eas_client import eas_predict, ensure_venv

from skewless.serving import read_log
from skewless.serving.server import ServeConfig

ROUTES = [("POST", "/invocations"), ("POST", "/api/predict/credit"), ("GET", "/api/predict/credit"),
          ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs")]
CREDENTIALS = ["missing", "wrong-token", "wrong-bearer", "wrong-signature"]
CASES = [(m, p, c) for m, p in ROUTES for c in CREDENTIALS]


@pytest.fixture(scope="module")
def server(credit):  # noqa: F811
    cfg = ServeConfig(repo=str(credit["repo"]), model="credit", stage="production", contract="both", token=TOKEN,
                      log_flush_seconds=0.2)
    with running(cfg) as (client, model):
        yield str(client.base_url).rstrip("/"), model


@pytest.fixture(scope="module")
def loans(credit):  # noqa: F811
    """Loan ids: the first for the right-token calls, the rest one per refused call (never sent with a right one)."""
    return [int(i) for i in credit["loans"].loan_id]


def _headers(credential: str, body: bytes) -> dict:
    wrong = TOKEN + "x"
    return {"missing": {}, "wrong-token": {"Authorization": wrong},
            "wrong-bearer": {"Authorization": f"Bearer {wrong}"},
            "wrong-signature": _signed(wrong, "credit", body)}[credential]


def _body(method: str, loan: int) -> bytes:
    return json.dumps({"loan_id": loan}).encode() if method == "POST" else b""


@pytest.mark.parametrize(("method", "path", "credential"), CASES, ids=[f"{m} {p} {c}" for m, p, c in CASES])
def test_a_wrong_or_missing_credential_is_401(server, loans, method, path, credential):
    url, model = server
    loan = loans[1 + CASES.index((method, path, credential))]
    body = _body(method, loan)
    pending = model.log.pending
    r = httpx.request(method, url + path, content=body or None, headers=_headers(credential, body), timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "Unauthorized" and r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert "predictions" not in r.text and "proba" not in r.text and "loan_id" not in r.text
    assert model.log.pending == pending  # nothing handed to the prediction log


@pytest.mark.parametrize("mode", ["signed", "raw-token"])
def test_the_official_eas_client_with_a_wrong_token_is_401(server, loans, mode):
    url, model = server
    loan = loans[1 + len(CASES) + (mode == "raw-token")]
    custom = {"custom_url": f"{url}/api/predict/credit"} if mode == "raw-token" else {}
    status, text = eas_predict(ensure_venv(), url, "credit", TOKEN + "x", json.dumps({"loan_id": loan}), **custom)
    assert status == 401 and json.loads(text)["error"] == "Unauthorized", text


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_the_right_token_is_served(server, loans, method, path):
    """The control: the same routes answer with the right token (raw, Bearer and, on the EAS route, signed)."""
    url, _ = server
    body = _body(method, loans[0])
    forms = [{"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}]
    if path.startswith("/api/predict") and method == "POST":
        forms.append(_signed(TOKEN, "credit", body))
    for headers in forms:
        r = httpx.request(method, url + path, content=body or None, headers=headers, timeout=30)
        assert r.status_code == 200, (headers, r.text)


def test_the_log_holds_the_served_rows_and_none_refused(server, loans):
    """Last: the right-token predictions (2 on /invocations, 3 on the EAS route) are logged, no refused one."""
    _, model = server
    refused = set(loans[1:len(CASES) + 3])
    deadline = time.monotonic() + 30
    while True:
        logged = [r["loan_id"] for r in read_log(model.store, "credit").to_pylist()]
        if (logged.count(loans[0]) >= 5 and model.log.pending == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged.count(loans[0]) == 5
    assert not refused & set(logged)
