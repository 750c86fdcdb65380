"""Keys that cannot be keys (issue 12, items 1 and 2): refused at the request edge with a typed error naming the
key, never reaching a micro-batch (where they failed other callers) or the prediction log (which they poisoned).
Real server, real SQLite and Redis online stores, the official clients (httpx, the CLI runner)."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from typer.testing import CliRunner

from skewless.cli.main import app as cli
from skewless.errors import ValidationError
from skewless.serving import read_log
from skewless.serving.model import Request
from skewless.serving.server import ServeConfig

from skewless.sample_repo import credit_repo
from tests.serving.test_serving import entry_point, running, trained_credit

BIG = 2**70  # beyond Int64


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("badkeys") / "repo", sample=20, random_state=5)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def served_repo(request, credit, tmp_path_factory):
    """(repo folder, store) with the credit views online in SQLite (the credit repo itself) or in Redis."""
    if request.param == "sqlite":
        return credit["repo"], credit["store"]
    url = request.getfixturevalue("redis_url")
    path = tmp_path_factory.mktemp("badkeys_redis") / "repo"
    store = credit_repo(path, online_yaml=f"url: {url}\n  options: {{key_prefix: badkeys{os.getpid()}}}")
    assert type(store.online).__name__ == "RedisOnlineStore"
    return path, store


@pytest.mark.parametrize("value, why", [(BIG, "out of range"), (-BIG, "out of range"), (2**63, "out of range"),
                                        (True, "boolean"), (False, "boolean"), ("12", "not a valid Int64"),
                                        (1.5, "not a valid Int64"), ({"a": 1}, "not a valid Int64")])
def test_request_key_that_does_not_fit_its_dtype_is_422_naming_the_key(credit, value, why):
    m = credit["artifact"]
    from skewless.serving.model import ServedModel

    model = ServedModel(m, credit["store"])
    try:
        with pytest.raises(ValidationError, match=why) as exc:
            model.parse({"instances": [{"loan_id": 1}, {"loan_id": value}]})
        assert exc.value.column == "loan_id" and exc.value.row == 1
        assert model.parse({"loan_id": 2**63 - 1}).rows == [{"loan_id": 2**63 - 1}]  # the edges are keys
        assert model.parse({"loan_id": 3.0}).rows == [{"loan_id": 3}]
    finally:
        model.close(5)


def test_bad_keys_over_http_422_and_the_log_stays_whole(served_repo, credit):
    """The issue's request: 200 before, then every flush failed and the rows queued behind it were lost."""
    repo, store = served_repo
    cfg = ServeConfig(repo=str(repo), model_dir=str(credit["artifact"].path), log_flush_seconds=0.05)
    ids = [int(i) for i in credit["loans"].loan_id][:5]
    before = len(read_log(store, "credit")) if store.offline.version("predictions_credit") is not None else 0
    with running(cfg) as (c, model):
        for bad in (BIG, True, "x"):
            r = c.post("/invocations", json={"loan_id": bad})
            assert r.status_code == 422, r.text
            assert r.json()["error"] == "ValidationError" and r.json()["column"] == "loan_id"
        for i in ids:
            assert c.post("/invocations", json={"loan_id": i}).status_code == 200
        assert model.log.flush(20) and model.log.last_error is None and model.log.dead_lettered == 0
    log = read_log(store, "credit")
    assert len(log) == before + len(ids)


def test_a_bad_row_in_a_micro_batch_fails_its_own_request_only(served_repo, credit):
    """A row that got past the edge (e.g. a caller of predict_batch) fails alone; the batch's others answer."""
    from skewless.serving.model import ServedModel

    _, store = served_repo
    model = ServedModel(credit["artifact"], store, log_writer_options={"flush_seconds": 3600})
    model.load()
    ids = [int(i) for i in credit["loans"].loan_id][:6]
    try:
        reqs = [Request([{"loan_id": i}], f"r{i}") for i in ids[:3]] + [Request([{"loan_id": BIG}], "bad")] + \
               [Request([{"loan_id": i}], f"r{i}") for i in ids[3:]]
        out = model.predict_batch(reqs)
        assert [type(o).__name__ for o in out] == ["dict"] * 3 + ["ValidationError"] + ["dict"] * 3
        assert out[3].column == "loan_id"
        assert [o["request_id"] for o in out if isinstance(o, dict)] == [f"r{i}" for i in ids]
        assert model.log.pending == len(ids)  # the good rows once each, the bad one never
    finally:
        model.close(30)


def test_concurrent_valid_requests_unaffected_by_bad_keys(served_repo, credit):
    """The issue's probe: 180 concurrent requests, some carrying 2**70; before, 27 valid ones got 500."""
    repo, _ = served_repo
    cfg = ServeConfig(repo=str(repo), model_dir=str(credit["artifact"].path))
    ids = [int(i) for i in credit["loans"].loan_id]
    calls = [(n, BIG if n % 9 == 0 else ids[n % len(ids)]) for n in range(180)]
    with running(cfg) as (c, _), httpx.Client(base_url=str(c.base_url), timeout=30,
                                              limits=httpx.Limits(max_connections=24)) as shared:
        def call(arg):
            n, key = arg
            return n, shared.post("/invocations", json={"loan_id": key}).status_code
        with ThreadPoolExecutor(24) as pool:
            codes = dict(pool.map(call, calls))
    assert {codes[n] for n, k in calls if k == BIG} == {422}
    assert {codes[n] for n, k in calls if k != BIG} == {200}


def test_sdk_get_online_features_raises_validation_error(served_repo):
    _, store = served_repo
    for key in (BIG, -BIG, 2**63):
        with pytest.raises(ValidationError, match="out of the Int64 range") as exc:
            store.get_online_features(["loan_features:person_income"], [{"loan_id": 1}, {"loan_id": key}])
        assert exc.value.column == "loan_id" and exc.value.row == 1
    with pytest.raises(ValidationError, match="out of the Int64 range"):  # a join key of the second stage as well
        store.get_online_features(["zipcode_features:city"], [{"zipcode": BIG}])
    ok = store.get_online_features(["loan_features:person_income"], [{"loan_id": 2**63 - 1}, {"loan_id": -2**63}])
    assert ok.statuses["person_income"] == ["NOT_FOUND", "NOT_FOUND"]


def test_cli_get_online_prints_a_one_line_validation_error(served_repo):
    repo, _ = served_repo
    r = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["get-online", "-e", f"loan_id={BIG}", "--features",
                                                       "loan_features:person_income", "--repo", str(repo)])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "ValidationError" in lines[0] and "loan_id" in lines[0], r.output


def _logged_keys(store) -> Counter:
    """loan_id -> times logged (an empty log, as when this test runs alone, has no columns yet)."""
    log = read_log(store, "credit")
    return Counter(log.column("loan_id").to_pylist()) if "loan_id" in log.column_names else Counter()


def test_sigterm_with_the_log_store_down_spills_and_the_next_start_commits(credit, tmp_path):
    """The issue's shutdown: the server (the image's entry point) stops while the log's history is unreachable;
    before, the rows were lost and `prediction_log_complete` false."""
    from skewless.serving.prediction_log import PredictionLogWriter

    from tests.support.predlog_helpers import history_down
    from tests.serving.test_serving import free_port

    store, port, spill = credit["store"], free_port(), tmp_path / "spill"
    env = {**os.environ, "SKEWLESS_REPO": str(credit["repo"]), "SKEWLESS_MODEL_DIR": str(credit["artifact"].path),
           "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_LOG_FLUSH_SECONDS": "3600",
           "SKEWLESS_PREDICTION_LOG_DIR": str(spill)}
    PredictionLogWriter(store, credit["artifact"].manifest, spill_dir=spill).close()  # the history exists
    before_keys = _logged_keys(store)
    ids = [int(i) for i in credit["loans"].loan_id][:12]
    with history_down(store, "predictions_credit"):
        with entry_point(env, port, stop_timeout=90) as run:
            assert run.client.post("/invocations", json={"loan_id": BIG}).status_code == 422
            for i in ids:
                assert run.client.post("/invocations", json={"loan_id": i}).status_code == 200
        assert '"prediction_log_complete": true' in run.err and "rows spilled to disk" in run.err, run.err[-2000:]
    assert _logged_keys(store) == before_keys
    w = PredictionLogWriter(store, credit["artifact"].manifest, spill_dir=spill)  # the next start
    assert w.flush(30) and w.close(5)
    assert _logged_keys(store) == before_keys + Counter(ids)  # each once
