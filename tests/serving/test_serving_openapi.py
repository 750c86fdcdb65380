"""schemathesis on the model server's own OpenAPI document (serving/openapi.py), against a real server: valid and
invalid requests generated from the spec, bounded (deterministic, a few hundred in all). Every answer is
checked: no 5xx, statuses and bodies as documented, everything the spec allows accepted and everything it forbids
rejected with a 4xx (today `false` was accepted as a key and `[]` rejected although the schema allowed it)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               positive_data_acceptance, response_schema_conformance,
                                               status_code_conformance)
from tests.serving.test_serving import TOKEN, running, trained_credit

from skewless.serving.server import ServeConfig

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, negative_data_rejection]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    credit = trained_credit(tmp_path_factory.mktemp("openapi") / "repo", sample=3, random_state=11)
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="both", token=TOKEN)
    with running(cfg) as (client, _):
        yield client


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", headers={"Authorization": TOKEN})


def test_the_document_says_which_routes_need_the_token(server):
    """With a token configured, the document itself needs it, and declares it (and 401) on every route but the
    health checks, as the server enforces (tests/serving/test_serving_http_edge.py)."""
    assert server.get("/openapi.json", headers={"Authorization": ""}).status_code == 401
    doc = server.get("/openapi.json", headers={"Authorization": TOKEN}).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            guarded = path not in ("/ping", "/ready", "/live")
            assert ("security" in op) == guarded and ("401" in op["responses"]) == guarded, (method, path)


# Every operation of the document (the EAS service is the model's name), with the examples to generate: routes
# without parameters or a body have nothing to make invalid, so they get valid requests only.
RUNS = [("POST", "/invocations", "positive", 80), ("POST", "/invocations", "negative", 80),
        ("POST", "/api/predict/credit", "positive", 40), ("POST", "/api/predict/credit", "negative", 40),
        ("GET", "/api/predict/credit", "positive", 3), ("GET", "/ping", "positive", 3),
        ("GET", "/ready", "positive", 3), ("GET", "/live", "positive", 3), ("GET", "/metrics", "positive", 3)]


@pytest.mark.parametrize(("method", "path", "mode", "examples"), RUNS, ids=[f"{m} {p} {g}" for m, p, g, _ in RUNS])
def test_the_server_answers_as_its_openapi_says(api_schema, method, path, mode, examples):
    # schemathesis' own pytest plugin (schema.parametrize / from_fixture) does not run under pytest 9: the
    # operations' strategies are driven with Hypothesis directly, as that plugin would.
    operation = api_schema[path][method]

    # JSON bodies only: the CSV and JSON Lines bodies are declared as strings (their rows described in words and
    # x-columns), which a generator can only fill with noise; test_serving_content_types covers them.
    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)).filter(
        lambda case: case.media_type in (None, "application/json")))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers={"Authorization": TOKEN}, checks=CHECKS)
    run()
