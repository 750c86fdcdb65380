"""The HTTP bad-input corpus (tests/fixtures/bad_inputs/http.yaml) against a real server: every case answers its
4xx with a typed JSON error body, never a 5xx, and the server still predicts afterwards."""

from __future__ import annotations

import json

import orjson
import pytest
import yaml
from tests.serving.test_serving import TOKEN, running, trained_credit

from skewless.serving.server import ServeConfig
from tests.support.paths import FIXTURES

CASES = yaml.safe_load((FIXTURES / "bad_inputs" / "http.yaml").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    credit = trained_credit(tmp_path_factory.mktemp("bad_http") / "repo", sample=3, random_state=7)
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="both", token=TOKEN)
    with running(cfg) as (client, model):
        yield client, model, int(credit["loans"].loan_id.iloc[0])


def _body(case: dict) -> bytes | None:
    if "raw" in case:
        raw = case["raw"]
        if raw.startswith("deep:"):  # nesting deeper than any parser's limit
            n = int(raw[5:])
            return b"[" * n + b"]" * n
        return raw.encode("latin-1")  # "\xff" in the YAML is the byte 0xff
    if "rows" in case:
        return orjson.dumps([{"loan_id": 1}] * case["rows"])
    if "json" in case:
        return json.dumps(case["json"]).encode()  # the standard library: integers past 64 bits as written
    return None


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_gets_a_typed_4xx(server, case):
    client, model, _ = server
    headers = dict(case.get("headers") or {})
    # The client carries the server's token (every route but the health checks needs it); `auth: false` sends none.
    if case.get("auth") is False:
        headers["Authorization"] = ""
    elif case.get("auth"):
        headers["Authorization"] = TOKEN
    body = _body(case)
    r = client.request(case["method"], case["path"].replace("{service}", model.name), content=body, headers=headers)
    assert r.status_code < 500, f"{case['id']}: {r.status_code} {r.text[:300]}"
    assert r.status_code == case["status"], f"{case['id']}: {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    doc = r.json()
    assert doc["error"] == case["error"] and isinstance(doc["message"], str) and doc["message"], doc
    assert "Traceback" not in r.text


def test_the_server_still_predicts_after_the_corpus(server):
    client, _, loan = server
    r = client.post("/invocations", json={"loan_id": loan})
    assert r.status_code == 200 and r.json()["feature_status"] == {"missing_rows": 0}
    metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics and 'status="503"' not in metrics
