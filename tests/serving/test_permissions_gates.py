"""Permissions where skewless is the gate, over real servers: the feature server (httpx, Feast's JSON), the web UI
(uvicorn), and the CLI's model deploy/promote. Every denial is 403 / PermissionDenied, does nothing (the stores are
read back) and is audited; allowed calls work; a registry without permissions is open as before."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest
from tests.serving.test_serving_registry import SCORER, small_repo
from tests.support.feature_server import TOKEN, driver_repo, online_of, running
from tests.support.ui_site import serving as ui_serving
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app as cli
from skewless.permissions import hash_token
from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.timeutil import now as utc_now

READER, PUSHER, ADMIN = "reader-token-1", "pusher-token-1", "admin-token-1"


def govern(repo) -> sk.FeatureStore:
    """reader: read_online on driver_stats and the driver_service, and the UI; pusher: ingest on driver_stats; admin: all."""
    store = sk.FeatureStore(repo)
    objs = [*store.list_entities(), *store.list_feature_views(), *store.list_transforms(),
            *store.list_feature_services(), sk.Principal("reader", token_hashes=[hash_token(READER)]),
            sk.Principal("pusher", token_hashes=[hash_token(PUSHER)]),
            sk.Principal("admin", token_hashes=[hash_token(ADMIN)]),
            sk.Role("read", ["read_online"]), sk.Role("write", ["ingest"]), sk.Role("ui", ["view_ui"]),
            sk.Role("all", ["read_online", "ingest", "apply", "deploy", "view_ui"]),
            sk.Grant("reader_stats", role="read", principals=["reader"],
                     resources=["view:driver_stats", "service:driver_service"]),
            sk.Grant("reader_ui", role="ui", principals=["reader"]),  # view_ui is project-wide: on "*"
            sk.Grant("pusher_stats", role="write", principals=["pusher"], resources=["view:driver_stats"]),
            sk.Grant("admin_all", role="all", principals=["admin"])]
    store.apply(objs, prune=True)
    return store


@pytest.fixture(params=["sqlite", "redis"])
def repo(request, tmp_path):
    driver_repo(tmp_path / "repo", online=online_of(request, "fsperm"))
    return tmp_path / "repo"


def post(client, path, token, body):
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"} if token else {})


def read_body(features):
    return {"features": features, "entities": {"driver_id": [1, 2]}}


def push_body(view="driver_stats", value=9.0, to="online"):
    cols = {"driver_id": [1], "event_timestamp": [utc_now().isoformat()]}
    cols.update({"conv_rate": [value], "trips": [9]} if view == "driver_stats" else {"city": [f"x{value}"]})
    return {"push_source_name": view, "to": to, "df": cols}


def test_feature_server_reads_and_pushes_per_principal(repo):
    store = govern(repo)
    history = store.offline.version("driver_stats")
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,))) as (client, _):
        client.headers.pop("Authorization")
        ok = post(client, "/get-online-features", READER, read_body(["driver_stats:conv_rate"]))
        assert ok.status_code == 200 and ok.json()["results"][1]["values"] == [0.1, 0.2]
        svc = post(client, "/get-online-features", READER, {"feature_service": "driver_service",
                                                             "entities": {"driver_id": [1]}})
        assert svc.status_code == 200, svc.text  # the grant on the service covers its views
        for token, features in ((READER, ["driver_stats:conv_rate", "driver_profile:city"]),
                                (PUSHER, ["driver_stats:conv_rate"]), (TOKEN, ["driver_stats:conv_rate"]),
                                (None, ["driver_stats:conv_rate"])):
            r = post(client, "/get-online-features", token, read_body(features))
            # a configured server token that is no principal's is accepted (no 401) but names nobody: denied
            assert r.status_code == (401 if token is None else 403), r.text
            if token is not None:
                assert r.json()["error"] == "PermissionDenied" and "read_online" in r.json()["message"]
        # pushes: the reader may not, the pusher may on driver_stats only; denials write nothing
        for token, body in ((READER, push_body()), (PUSHER, push_body("driver_profile")),
                            (READER, push_body(to="offline"))):
            r = post(client, "/push", token, body)
            assert r.status_code == 403 and r.json()["error"] == "PermissionDenied", r.text
        r = client.post("/write-to-online-store", json={"feature_view_name": "driver_stats", "df": push_body()["df"]},
                        headers={"Authorization": f"Bearer {READER}"})
        assert r.status_code == 403, r.text
        assert store.offline.version("driver_stats") == history  # no denied push appended to the history
        online = post(client, "/get-online-features", ADMIN, read_body(["driver_stats:conv_rate", "driver_profile:city"]))
        assert [res["values"] for res in online.json()["results"][1:]] == [[0.1, 0.2], ["city1", "city2"]]
        # a principal's token passes the server's token check on every route (it is not in SKEWLESS_FS_TOKENS)
        doc = client.get("/openapi.json", headers={"Authorization": f"Bearer {READER}"})
        assert doc.status_code == 200 and "403" in doc.json()["paths"]["/push"]["post"]["responses"]
        assert client.get("/openapi.json", headers={"Authorization": "Bearer nobody"}).status_code == 401
        ok = post(client, "/push", PUSHER, push_body(value=0.75))
        assert ok.status_code == 200, ok.text
        assert post(client, "/get-online-features", READER, read_body(["driver_stats:conv_rate"])
                    ).json()["results"][1]["values"] == [0.75, 0.2]
    denied = store.audit_log.records(outcome="denied")
    assert [(r.principal, r.action, r.resource) for r in denied] == [
        ("reader", "read_online", "view:driver_profile"), ("pusher", "read_online", "view:driver_stats"),
        (None, "read_online", "view:driver_stats"),
        ("reader", "ingest", "view:driver_stats"), ("pusher", "ingest", "view:driver_profile"),
        ("reader", "ingest", "view:driver_stats"), ("reader", "ingest", "view:driver_stats")]
    allowed = store.audit_log.records(principal="pusher", outcome="allowed")
    assert [(r.action, r.resource) for r in allowed] == [("ingest", "view:driver_stats")]


def test_feature_server_without_permissions_is_as_before(repo):
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,))) as (client, _):
        assert client.post("/get-online-features", json=read_body(["driver_profile:city"])).status_code == 200
        assert client.post("/push", json=push_body("driver_profile", 1.5)).status_code == 200
        assert client.post("/get-online-features", json=read_body(["driver_profile:city"])
                           ).json()["results"][1]["values"] == ["x1.5", "city2"]


def test_ui_needs_view_ui_once_permissions_exist(tmp_path):
    repo = tmp_path / "repo"
    driver_repo(repo)
    with ui_serving(repo) as base:
        assert httpx.get(f"{base}/views").status_code == 200  # open: as before
    store = govern(repo)
    with ui_serving(repo) as base:
        assert httpx.get(f"{base}/health").status_code == 200  # a probe needs no token
        for headers in ({}, {"Authorization": f"Bearer {PUSHER}"}, {"Authorization": "Bearer nope"}):
            r = httpx.get(f"{base}/views", headers=headers)
            assert r.status_code == 403 and r.json()["error"] == "PermissionDenied"
        r = httpx.get(f"{base}/views", headers={"Authorization": f"Bearer {READER}"})
        assert r.status_code == 200 and "driver_stats" in r.text
        with httpx.Client(base_url=base) as browser:  # a link with ?token= leaves a cookie for the next pages
            assert browser.get(f"/?token={READER}").status_code == 200
            assert browser.get("/object/feature_view/driver_stats").status_code == 200
    assert [(r.principal, r.action) for r in store.audit_log.records(outcome="denied")] == [
        (None, "view_ui"), ("pusher", "view_ui"), (None, "view_ui")]


def test_model_deploy_and_promote_need_deploy(tmp_path, monkeypatch):
    store, job = small_repo(tmp_path / "repo")
    job.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "scorer_cli.py").write_text(SCORER.replace('open(path + "/factor.txt")', 'open(__file__)').replace(
        "float(fh.read())", "1.0"))
    runner, repo = CliRunner(), str(tmp_path / "repo")
    r = runner.invoke(cli, ["model", "package", f"{tmp_path / 'scorer_cli.py'}:Scorer", "--name", "scorer",
                            "--service", "scoring", "--training-set", str(tmp_path / "train.parquet"), "-r", repo])
    assert r.exit_code == 0, r.output
    store.apply([*store.list_entities(), *store.list_feature_views(), *store.list_feature_services(),
                 sk.Principal("ops"), sk.Principal("dev"), sk.Role("deployer", ["deploy"]),
                 sk.Grant("ops_deploys", role="deployer", principals=["ops"], resources=["model:scor*"])], prune=True)
    monkeypatch.setenv("SKEWLESS_PRINCIPAL", "dev")
    r = runner.invoke(cli, ["model", "promote", "scorer", "1", "production", "-r", repo])
    assert r.exit_code == 1 and "PermissionDenied" in r.output
    r = runner.invoke(cli, ["model", "deploy", "scorer", "1", "-e", "ep", "-t", "local", "-r", repo])
    assert r.exit_code == 1 and "PermissionDenied" in r.output
    r = runner.invoke(cli, ["model", "list", "-r", repo])
    assert "production" not in r.output  # the promote did nothing
    monkeypatch.setenv("SKEWLESS_PRINCIPAL", "ops")
    r = runner.invoke(cli, ["model", "promote", "scorer", "1", "production", "-r", repo])
    assert r.exit_code == 0 and "production=v1" in r.output
    got = [(r.principal, r.action, r.resource, r.outcome) for r in store.audit_log.records(action="deploy")]
    assert got == [("dev", "deploy", "model:scorer", "denied"), ("dev", "deploy", "model:scorer", "denied"),
                   ("ops", "deploy", "model:scorer", "allowed")]


@sk.on_demand(inputs=["driver_profile:city"], outputs=[sk.Field("city_len", sk.Int64)])
def city_len(df):
    return pd.DataFrame({"city_len": df["city"].str.len()})


def test_a_transform_output_needs_read_online_on_its_input_views(tmp_path):
    repo = tmp_path / "repo"
    store = driver_repo(repo)
    store.apply([city_len])
    govern(repo)  # reader may read driver_stats only; admin everything
    store.refresh_registry()
    with running(FeatureServerConfig(repo=str(repo))) as (client, _):
        r = post(client, "/get-online-features", READER, read_body(["city_len:city_len"]))
        assert r.status_code == 403 and "view:driver_profile" in r.json()["message"]
        r = post(client, "/get-online-features", ADMIN, read_body(["city_len:city_len"]))
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [5, 5]
    assert [r.resource for r in store.audit_log.records(outcome="denied")] == ["view:driver_profile"]
