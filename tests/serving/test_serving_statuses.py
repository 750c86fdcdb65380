"""Issue 12 item 8: a prediction made without its features says so. Every answer carries a ``feature_status``
summary, a model's policy (``serve``, ``flag``, ``reject``) decides what a row missing a required view gets, the
metrics count rows per view and status, and readiness notices an online store that answers but holds none of the
model's views (a Redis restarted empty). Real parts: the credit model served by uvicorn over SQLite and Redis."""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest
import redis
from tests.serving.test_serving import SERVICE, running, trained_credit

import skewless as sk
from skewless.online.sqlite import SQLiteOnlineStore
from skewless.serving import ModelArtifact, package_model
from skewless.serving.errors import MissingFeatures
from skewless.serving.model import Request, ServedModel
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now

from skewless.sample_repo import credit_repo

VIEWS = ("loan_features", "loan_zipcode", "zipcode_features")  # what the credit model reads, by stage


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return trained_credit(tmp_path_factory.mktemp("statuses") / "repo", sample=10, random_state=5)


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


def _own_db(redis_url: str) -> str:
    """The local Redis's database 7: the test's own, as a feature store's Redis is. Database 0 holds every test
    session's keys, a keyspace the bounded SCAN of ``holds_rows`` may not get through (it then answers None)."""
    return redis_url.rsplit("/", 1)[0] + "/7" if redis_url.count("/") > 2 else redis_url + "/7"


def _packaged(credit, tmp_path, **policy) -> str:
    art = package_model(credit["model"], name="credit", store=credit["store"], feature_service=SERVICE,
                        training_set=credit["job"], key_lookups={"zipcode": "loan_zipcode:zipcode"},
                        path=tmp_path / f"art-{uuid.uuid4().hex[:6]}", **policy)
    return str(art.path)


def test_every_answer_says_how_many_rows_missed_their_features_and_metrics_count_them(credit):
    """The default policy (serve): 200 with the model's default, and the answer counts the rows per view and
    status. On today's code the answer had no status at all."""
    known = [int(i) for i in credit["loans"].loan_id[:2]]
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path))
    with running(cfg) as (c, model):
        ok = c.post("/invocations", json={"loan_id": known[0]}).json()
        assert ok["feature_status"] == {"missing_rows": 0} and len(ok["predictions"]) == 1
        assert model.missing_policy == "serve"
        unknown = c.post("/invocations", json={"loan_id": -7})
        assert unknown.status_code == 200
        assert unknown.json()["feature_status"] == {"missing_rows": 1, "views": {v: {"NOT_FOUND": 1} for v in VIEWS}}
        mixed = c.post("/invocations", json={"instances": [{"loan_id": known[1]}, {"loan_id": 10 ** 15},
                                                           {"loan_id": known[0]}]}).json()
        assert len(mixed["predictions"]) == 3
        assert mixed["feature_status"] == {"missing_rows": 1, "views": {v: {"NOT_FOUND": 1} for v in VIEWS}}
        text = c.get("/metrics").text
    for v in VIEWS:
        assert _metric(text, "skewless_feature_rows_total", view=v, status="NOT_FOUND") == 2
        assert _metric(text, "skewless_feature_rows_total", view=v, status="PRESENT") == 3
    assert _metric(text, "skewless_rows_missing_features_total", outcome="served") == 2
    assert _metric(text, "skewless_rows_missing_features_total", outcome="rejected") == 0


def test_flag_lists_the_rows_served_without_their_features(credit):
    known = int(credit["loans"].loan_id.iloc[0])
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), missing_features="flag")
    with running(cfg) as (c, _):
        body = c.post("/invocations", json=[{"loan_id": -1}, {"loan_id": known}, {"loan_id": -2}]).json()
        text = c.get("/metrics").text
    assert len(body["predictions"]) == 3
    missing = {v: "NOT_FOUND" for v in VIEWS}
    assert body["feature_status"]["rows"] == [{"row": 0, "missing": missing}, {"row": 2, "missing": missing}]
    assert body["feature_status"]["missing_rows"] == 2
    assert _metric(text, "skewless_rows_missing_features_total", outcome="flagged") == 2


def test_reject_answers_422_naming_the_features_and_fails_only_that_request(credit, tmp_path):
    """``reject`` in the artifact, for the loan's own view only: a request whose loan is unknown gets 422 naming
    loan_features' features; the other requests of the same micro-batch are answered, and only their rows reach
    the prediction log."""
    path = _packaged(credit, tmp_path, missing_features="reject", required_features=["loan_features"])
    art = ModelArtifact(path)
    assert art.manifest.missing_features == "reject" and art.manifest.required_features == ["loan_features"]
    model = ServedModel(art, credit["store"], log_writer_options={"flush_seconds": 3600})
    model.load()
    try:
        known = [int(i) for i in credit["loans"].loan_id[:3]]
        reqs = [Request([{"loan_id": known[0]}], "a"), Request([{"loan_id": known[1]}, {"loan_id": -5}], "b"),
                Request([{"loan_id": known[2]}], "c")]
        seen = []
        model.on_statuses = lambda *a: seen.append(a)
        out = model.predict_batch(reqs)
        assert [type(o).__name__ for o in out] == ["dict", "MissingFeatures", "dict"]
        err = out[1]
        assert isinstance(err, MissingFeatures) and err.row == 1
        assert err.features and all(f.startswith("loan_features:") for f in err.features)
        assert "loan_features:" in str(err) and "NOT_FOUND" in str(err)
        assert model.log.pending == 2  # the rejected request's rows are neither predicted nor logged
        assert [(n, outcome) for n, _, _, outcome in seen] == [(2, "rejected"), (2, "served")]
        assert seen[0][2] == 1  # one row of the rejected request missed its features
    finally:
        model.close(0)
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=path)
    with running(cfg) as (c, _):
        r = c.post("/invocations", json={"loan_id": -3})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "MissingFeatures" and body["row"] == 0
        assert body["features"] == err.features
        assert c.post("/invocations", json={"loan_id": known[0]}).status_code == 200
        # the server's setting overrides the artifact's
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=path, missing_features="serve")
    with running(cfg) as (c, _):
        assert c.post("/invocations", json={"loan_id": -3}).status_code == 200


def test_policy_is_validated_where_it_is_set(credit, tmp_path, monkeypatch):
    with pytest.raises(sk.DefinitionError, match="missing_features must be one of serve, flag, reject"):
        _packaged(credit, tmp_path, missing_features="drop")
    with pytest.raises(sk.DefinitionError, match="required feature 'loan_features:nope' is not one the model reads"):
        _packaged(credit, tmp_path, required_features=["loan_features:nope"])
    monkeypatch.setenv("SKEWLESS_MISSING_FEATURES", "flag")
    assert ServeConfig.from_env().missing_features == "flag"
    from skewless.serving.server import build

    with pytest.raises(sk.ConfigError, match="missing_features must be one of"):
        build(ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), missing_features="x"))


def test_online_store_holds_rows_per_view(credit, redis_url, tair_url, tmp_path):
    """The readiness probe's question: False for a view never written (SQLite, Redis), True once rows are there
    (Redis: in the next test, before and after its keys are deleted)."""
    from skewless.adapters.alibaba.tair import from_url as tair_from_url
    from skewless.adapters.redis.store import RedisOnlineStore

    views = {v.name: v for v in credit["store"].list_feature_views()}
    assert credit["store"].online.holds_rows(views["loan_features"]) is True
    assert SQLiteOnlineStore(str(tmp_path / "empty.db")).holds_rows(views["loan_features"]) is False
    rs = RedisOnlineStore(_own_db(redis_url), {"key_prefix": f"holds{os.getpid()}{uuid.uuid4().hex[:6]}"})
    try:
        assert rs.holds_rows(views["loan_features"]) is False
    finally:
        rs.close()
    # Tair (its emulator's RESP front, TairHash path): the inherited SCAN answers, or "cannot tell"; never an error
    ts = tair_from_url(tair_url, None, {"key_prefix": f"holds{os.getpid()}{uuid.uuid4().hex[:6]}"})
    try:
        assert ts.holds_rows(views["loan_features"]) in (False, None)
    finally:
        ts.close()


def test_ready_is_false_while_the_online_store_is_empty_after_a_restart(credit, redis_url, tmp_path):
    """A Redis that answers but lost every key (a restart without persistence): /ping and /ready 503 naming the
    cause within a store check, and ready again once the views are materialized. Today: 200 throughout, and every
    prediction a default."""
    prefix = f"restart{os.getpid()}{uuid.uuid4().hex[:6]}"
    url = _own_db(redis_url)
    store = credit_repo(tmp_path / "repo", online_yaml=f"url: {url}\n  options: {{key_prefix: {prefix}}}")
    cfg = ServeConfig(repo=str(tmp_path / "repo"), model_dir=str(credit["artifact"].path))
    cfg.extra["store_check_seconds"] = 0.2
    client = redis.Redis.from_url(url)
    views = {v.name: v for v in store.list_feature_views()}
    try:
        _serve_through_an_emptied_store(store, cfg, client, prefix, views)
    finally:  # database 7 stays small enough for holds_rows' bounded scan to answer, run after run
        for batch in _batched(client.scan_iter(match=f"{prefix}:*", count=1000), 1000):
            client.unlink(*batch)
        client.close()


def _batched(items, n: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _serve_through_an_emptied_store(store, cfg, client, prefix: str, views: dict) -> None:
    with running(cfg) as (c, _):
        assert c.get("/ping").status_code == 200
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        client.delete(*keys)  # what a restart without persistence leaves: the server answers, holding nothing
        deadline = time.monotonic() + 10
        while c.get("/ping").status_code == 200:
            assert time.monotonic() < deadline, "readiness never noticed the empty store"
            time.sleep(0.1)
        for path in ("/ping", "/ready"):
            r = c.get(path)
            assert r.status_code == 503 and "holds no rows of the model's feature views" in r.json()["reason"]
            assert "loan_features" in r.json()["reason"]
        assert not any(store.online.holds_rows(views[v]) for v in VIEWS)
        store.materialize_incremental(utc_now())
        assert all(store.online.holds_rows(views[v]) for v in VIEWS)
        deadline = time.monotonic() + 10
        while c.get("/ping").status_code != 200:
            assert time.monotonic() < deadline, "readiness never came back after materializing"
            time.sleep(0.1)


def test_cli_package_records_the_policy(credit, tmp_path):
    import joblib
    from typer.testing import CliRunner

    from skewless.cli.main import app as cli

    joblib.dump(credit["model"], tmp_path / "model.joblib")
    credit["job"].to_parquet(tmp_path / "train.parquet")
    args = ["model", "package", str(tmp_path / "model.joblib"), "--name", "credit", "--service", SERVICE,
            "--training-set", str(tmp_path / "train.parquet"), "--key-lookup", "zipcode=loan_zipcode:zipcode",
            "--no-register", "-r", str(credit["repo"])]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "art"), "--missing-features", "reject",
                                 "--required", "loan_features", "--required", "zipcode_features"])
    assert r.exit_code == 0, r.output
    m = ModelArtifact(tmp_path / "art").manifest
    assert m.missing_features == "reject" and m.required_features == ["loan_features", "zipcode_features"]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "bad"), "--missing-features", "ignore"])
    assert r.exit_code == 1 and "DefinitionError" in r.output and "missing_features must be one of" in r.output


def test_rows_past_a_views_ttl_are_counted_expired_and_rejected_by_policy(tmp_path):
    """The other missing status: a view whose TTL has passed for every row (the credit data is years old; a one-day
    TTL applied before packaging, which bakes the views into the manifest) reads EXPIRED, which the answer counts,
    the metrics count and ``reject`` refuses."""
    from skewless.repo import load_objects

    credit = trained_credit(tmp_path / "repo", sample=2, random_state=7)
    features_py = credit["repo"] / "features.py"
    text = features_py.read_text()
    assert "ttl=None,  # slowly changing reference data" in text
    features_py.write_text(text.replace("ttl=None,  # slowly changing reference data", "ttl=timedelta(days=1),  #"))
    credit["store"].apply(load_objects(credit["repo"]))
    model_dir = _packaged(credit, tmp_path)
    loan = int(credit["loans"].loan_id.iloc[0])
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=model_dir)
    with running(cfg) as (c, _):
        served = c.post("/invocations", json={"loan_id": loan})
        assert served.status_code == 200
        assert served.json()["feature_status"] == {"missing_rows": 1,
                                                   "views": {"zipcode_features": {"EXPIRED": 1}}}
        text = c.get("/metrics").text
    assert _metric(text, "skewless_feature_rows_total", view="zipcode_features", status="EXPIRED") == 1
    assert _metric(text, "skewless_feature_rows_total", view="loan_features", status="PRESENT") == 1
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=model_dir, missing_features="reject")
    with running(cfg) as (c, _):
        r = c.post("/invocations", json={"loan_id": loan})
        assert r.status_code == 422 and r.json()["error"] == "MissingFeatures"
        assert any(f.startswith("zipcode_features:") for f in r.json()["features"])
