"""Alibaba's official ``eas_prediction`` client against the model server's EAS route and the local EAS emulator's
gateway. By default (``set_token``, no ``custom_url``) it signs each request (``Authorization: EAS <sig>`` over the
body's md5, content type, date and path) rather than sending the token; with ``custom_url`` it sends the raw token.
Both must predict (and log); a wrong token or a body swapped after signing must be a 401 that predicts and logs
nothing. The client runs from its own venv (``tests.support.eas_client``)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import httpx
import pytest
from tests.serving.test_deploy import eas_emulation
from tests.serving.test_serving import TOKEN, credit, in_process, running  # noqa: F401 - `credit` is a fixture
from tests.support.eas_client import ensure_venv, eas_predict

from skewless.serving import read_log
from skewless.serving.eas_auth import signature
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now


@pytest.fixture(scope="module")
def eas_python():
    return ensure_venv()


def _signed(token: str, service: str, body: bytes, *, sign_body: bytes | None = None) -> dict:
    """Headers as the official client builds them, signed over ``sign_body`` (default: ``body``)."""
    md5 = hashlib.md5(sign_body if sign_body is not None else body).hexdigest()
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT")
    ctype = "application/octet-stream"
    sig = signature(token, "POST", md5, ctype, date, f"/api/predict/{service}")
    return {"Authorization": f"EAS {sig}", "Content-MD5": md5, "Date": date, "Content-Type": ctype}


def _expected(credit, loan: int) -> float:  # noqa: F811
    return in_process(credit, credit["loans"].set_index("loan_id").loc[[loan]].reset_index(), utc_now())[0]


def _logged(store, loans: list[int]) -> list[int]:
    """The logged rows' loan ids among ``loans`` (each test here sends its own loans)."""
    return [r["loan_id"] for r in read_log(store, "credit").to_pylist() if r["loan_id"] in loans]


def test_official_client_against_the_model_server(credit, eas_python):  # noqa: F811
    store, ids = credit["store"], [int(i) for i in credit["loans"].loan_id]
    served, refused = ids[:3], ids[3:6]  # loans predicted / only ever sent in refused requests
    cfg = ServeConfig(repo=str(credit["repo"]), model="credit", stage="production", contract="both", token=TOKEN,
                      log_flush_seconds=3600, max_body_bytes=100_000)  # flushed at shutdown
    with running(cfg) as (client, model):
        url = str(client.base_url).rstrip("/")

        def call(loan: int, token: str = TOKEN, **kw) -> tuple[int, str]:
            return eas_predict(eas_python, url, "credit", token, json.dumps({"loan_id": loan}), **kw)

        # (a) signed, the client's default content type and application/json
        for loan, kw in [(served[0], {}), (served[1], {"content_type": "application/json"})]:
            status, text = call(loan, **kw)
            assert status == 200, text
            assert json.loads(text)["predictions"][0]["proba_1"] == pytest.approx(_expected(credit, loan))
        # (c) custom_url: the raw token
        status, text = call(served[2], custom_url=f"{url}/api/predict/credit")
        assert status == 200 and json.loads(text)["predictions"][0]["proba_1"] == pytest.approx(
            _expected(credit, served[2]))
        # (d) a wrong token, signed or raw
        assert call(refused[0], token=TOKEN + "x")[0] == 401
        assert call(refused[0], token=TOKEN + "x", custom_url=f"{url}/api/predict/credit")[0] == 401
        # (e) crafted like the client: right when signed over the body sent, 401 once the body is swapped
        body, other = (json.dumps({"loan_id": n}).encode() for n in (served[0], refused[1]))
        with httpx.Client(base_url=url, timeout=30) as h:
            assert h.post("/api/predict/credit", content=body, headers=_signed(TOKEN, "credit", body)).status_code \
                == 200
            swapped = _signed(TOKEN, "credit", body)
            r = h.post("/api/predict/credit", content=other, headers=swapped)
            assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
            # the md5 header fitted to the new body breaks the signature instead
            refit = {**swapped, "Content-MD5": hashlib.md5(other).hexdigest()}
            assert h.post("/api/predict/credit", content=other, headers=refit).status_code == 401
            # signed for another path, or not signed at all
            assert h.post("/api/predict/credit", content=other,
                          headers=_signed(TOKEN, "credit2", other)).status_code == 401
            assert h.post("/api/predict/credit", content=other,
                          headers={**swapped, "Authorization": "EAS"}).status_code == 401
            # the signed form reads the body to check it, still within the body limit
            big = json.dumps({"loan_id": refused[2], "pad": "x" * 200_000}).encode()
            r = h.post("/api/predict/credit", content=big, headers=_signed(TOKEN, "credit", big))
            assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
            # the SageMaker route takes no signature
            assert h.post("/invocations", content=body, headers=_signed(TOKEN, "credit", body)).status_code == 401
        assert model.log.pending == 4
    log = _logged(store, served + refused)
    assert sorted(log) == sorted(served + [served[0]])


def test_official_client_against_the_eas_emulator(credit, eas_python, tmp_path):  # noqa: F811
    store, ids = credit["store"], [int(i) for i in credit["loans"].loan_id]
    with eas_emulation(store, tmp_path) as target:
        endpoint = f"crediteas{uuid.uuid4().hex[:6]}"
        target.deploy("credit", 1, endpoint)
        try:
            token, gateway = target.token(endpoint), target.invoke_url
            # (b) signed, on the group's path (routed to its member) and on the member service's own path
            for loan, service in [(ids[7], endpoint), (ids[8], f"{endpoint}_v1")]:
                status, text = eas_predict(eas_python, gateway, service, token, json.dumps({"loan_id": loan}))
                assert status == 200, text
                assert json.loads(text)["predictions"][0]["proba_1"] == pytest.approx(_expected(credit, loan))
            status, _ = eas_predict(eas_python, gateway, endpoint, token, json.dumps({"loan_id": ids[9]}),
                                    custom_url=f"{gateway}/api/predict/{endpoint}")
            assert status == 200
            assert eas_predict(eas_python, gateway, endpoint, token + "x", json.dumps({"loan_id": ids[10]}))[0] == 401
            body, other = (json.dumps({"loan_id": n}).encode() for n in (ids[7], ids[11]))
            r = httpx.post(f"{gateway}/api/predict/{endpoint}", content=other,
                           headers=_signed(token, endpoint, body), timeout=30)
            assert r.status_code == 401
            deadline = time.monotonic() + 30
            while len(_logged(store, ids[7:12])) < 3 and time.monotonic() < deadline:
                time.sleep(0.3)
            time.sleep(1.5)  # one more flush (every second): anything refused would have landed by now
            assert sorted(_logged(store, ids[7:12])) == sorted(ids[7:10])
        finally:
            target.delete(endpoint)
