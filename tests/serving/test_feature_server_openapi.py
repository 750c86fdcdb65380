"""schemathesis on the feature server's own OpenAPI document (serving/feature_server/openapi.py), against a real
server on SQLite: valid and invalid requests generated from the spec, bounded (deterministic, a few hundred in all).
No answer is a 5xx, and every status and body is one the document declares."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from tests.support.feature_server import TOKEN, driver_repo, running

from skewless.serving.feature_server.server import FeatureServerConfig

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("fs-openapi") / "repo"
    driver_repo(repo)
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,), max_entities=50, max_push_rows=50)) as (c, _):
        yield c


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", headers=AUTH)


RUNS = [("POST", "/get-online-features", "positive", 120), ("POST", "/get-online-features", "negative", 80),
        ("POST", "/push", "positive", 60), ("POST", "/push", "negative", 40),
        ("POST", "/write-to-online-store", "positive", 40), ("POST", "/write-to-online-store", "negative", 30),
        ("GET", "/health", "positive", 3), ("GET", "/metrics", "positive", 3)]


@pytest.mark.parametrize(("method", "path", "mode", "examples"), RUNS, ids=[f"{m} {p} {g}" for m, p, g, _ in RUNS])
def test_the_feature_server_answers_as_its_openapi_says(api_schema, method, path, mode, examples):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=AUTH, checks=CHECKS)
    run()


def test_the_document_declares_the_token_where_it_is_needed(server):
    doc = server.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("security" in op) == (path != "/health") and ("401" in op["responses"]) == (path != "/health")


def test_the_fuzz_reached_the_store(server):
    """Runs after the fuzz (file order): valid reads were answered from the store, not all refused at parsing.
    (Generated pushes rarely hold every column of a view: the push tests write through ingest.)"""
    text = server.get("/metrics").text
    m = re.search(r'^skewless_fs_requests_total{route="get-online-features",status="200"} (\S+)$', text, re.M)
    assert m and float(m.group(1)) >= 5, re.findall(r"^skewless_fs_requests_total.*$", text, re.M)
