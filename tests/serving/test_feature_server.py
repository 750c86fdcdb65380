"""The HTTP feature server (serving/feature_server/): Feast's request and answer shapes on SQLite and a real Redis,
push to online / offline / both through ingest's write path, tokens, limits, health, metrics and the docs page."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import yaml
from tests.support.paths import FIXTURES
from tests.support.feature_server import T0, TOKEN, driver_repo, online_of, running
from typer.testing import CliRunner

from skewless.cli.main import app as cli
from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.timeutil import now as utc_now


@pytest.fixture(params=["sqlite", "redis"])
def repo(request, tmp_path):
    driver_repo(tmp_path / "repo", online=online_of(request, "fs"))
    return tmp_path / "repo"


@pytest.fixture
def server(repo):
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,))) as (client, _):
        yield client


def read(client, features, ids, **extra):
    r = client.post("/get-online-features", json={"features": features, "entities": {"driver_id": ids}, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_online_features_in_feasts_shape(server):
    doc = read(server, ["driver_stats:conv_rate", "driver_profile:city", "driver_rating:rating"], [2, 1, 99])
    assert doc["metadata"]["feature_names"] == ["driver_id", "conv_rate", "city", "rating"]
    key, conv, city, rating = doc["results"]
    # The keys first, as feast serve answers (Feast's remote store reads the view's time from results[1]).
    assert key == {"values": [2, 1, 99], "statuses": ["PRESENT"] * 3, "event_timestamps": ["1970-01-01T00:00:00Z"] * 3}
    assert conv["values"] == [0.2, 0.1, None]
    assert conv["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert conv["event_timestamps"] == ["2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]
    assert city["values"] == ["city2", "city1", None]
    # driver_rating's ttl is a day and its rows are from 2025-01-01: expired, Feast's OUTSIDE_MAX_AGE (Redis has
    # evicted them by their TTL: NOT_FOUND, as its store documents).
    assert rating["statuses"][0] in ("OUTSIDE_MAX_AGE", "NOT_FOUND") and rating["values"] == [None] * 3
    assert rating["statuses"][2] == "NOT_FOUND"


def test_feature_service_and_full_feature_names(server):
    r = server.post("/get-online-features", json={"feature_service": "driver_service", "entities": {"driver_id": [3]},
                                                   "full_feature_names": True})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["metadata"]["feature_names"] == ["driver_id", "driver_stats__conv_rate", "driver_profile__city"]
    assert [res["values"] for res in doc["results"]] == [[3], [0.3], ["city3"]]


@pytest.mark.parametrize("to", ["online", "online_and_offline", "offline"])
def test_push_goes_through_ingest_to_where_it_is_sent(server, repo, to):
    from skewless import FeatureStore

    now = utc_now().replace(microsecond=0)
    r = server.post("/push", json={"push_source_name": "driver_stats", "to": to, "df": {
        "driver_id": [1, 7], "conv_rate": [0.9, 0.7], "trips": [11, 77],
        "event_timestamp": [now.isoformat(), now.isoformat()]}})
    assert r.status_code == 200, r.text
    assert r.json()["views"][0]["rows"] == 2
    online = read(server, ["driver_stats:conv_rate"], [1, 7])["results"][1]
    store = FeatureStore(repo)
    hist = store.get_historical_features(pd.DataFrame({"driver_id": [7], "event_timestamp": [now + timedelta(1)]}),
                                         ["driver_stats:conv_rate"]).to_pandas()
    if to == "offline":  # the history only: online unchanged until a materialize
        assert online["values"] == [0.1, None] and hist["conv_rate"].tolist() == [0.7]
        store.materialize_incremental(utc_now())
        assert read(server, ["driver_stats:conv_rate"], [1, 7])["results"][1]["values"] == [0.9, 0.7]
    else:
        assert online["values"] == [0.9, 0.7]
        assert online["event_timestamps"][1] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
        expected = [0.7] if to == "online_and_offline" else [None]  # online-only appends no history
        assert [None if v != v else v for v in hist["conv_rate"].tolist()] == expected


def test_a_bad_push_is_refused_and_writes_nothing(server):
    bad = server.post("/push", json={"push_source_name": "driver_stats", "df": {
        "driver_id": [1, 2], "conv_rate": [0.5, "high"], "trips": [1, 2],
        "event_timestamp": [T0.isoformat()] * 2}})
    assert bad.status_code == 422 and bad.json()["column"] == "conv_rate" and bad.json()["row"] == 1
    assert read(server, ["driver_stats:conv_rate"], [1])["results"][1]["values"] == [0.1]
    ragged = server.post("/push", json={"push_source_name": "driver_stats", "df": {"driver_id": [1, 2], "trips": [1]}})
    assert ragged.status_code == 422 and "trips" in ragged.json()["message"]
    unknown = server.post("/push", json={"push_source_name": "nope", "df": {"driver_id": [1]}})
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFoundError"
    mode = server.post("/push", json={"push_source_name": "driver_stats", "df": {"driver_id": [1]}, "to": "both"})
    assert mode.status_code == 422 and mode.json()["column"] == "to"


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer", "Basic " + TOKEN, TOKEN + "x"])
def test_without_a_valid_token_401_and_nothing_done(repo, auth):
    cfg = FeatureServerConfig(repo=str(repo), tokens=("other-token", TOKEN))
    with running(cfg) as (client, _):
        headers = {"Authorization": auth} if auth is not None else {}
        client.headers.pop("Authorization")
        for path in ("/get-online-features", "/push", "/write-to-online-store"):
            r = client.post(path, headers=headers, json={"push_source_name": "driver_stats", "df": {
                "driver_id": [1], "conv_rate": [5.0], "trips": [5], "event_timestamp": [utc_now().isoformat()]}})
            assert r.status_code == 401 and r.json()["error"] == "Unauthorized", path
        for path in ("/metrics", "/openapi.json", "/docs", "/docs/swagger-ui.css"):
            assert client.get(path, headers=headers).status_code == 401, path
        assert client.get("/health", headers=headers).status_code == 200  # a load balancer's probe: no token
        # Nothing was pushed: the second configured token (rotation) reads the old value.
        ok = client.post("/get-online-features", headers={"Authorization": f"Bearer {TOKEN}"},
                         json={"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1]}})
        assert ok.json()["results"][1]["values"] == [0.1]


def test_tokens_from_a_secret_file_and_bad_settings(repo, tmp_path):
    secret = tmp_path / "tokens"
    secret.write_text("\nfile-token\n")
    cfg = FeatureServerConfig.from_env({"SKEWLESS_FS_TOKEN_FILE": str(secret), "SKEWLESS_REPO": str(repo)})
    assert cfg.all_tokens() == ("file-token",)
    from skewless.errors import ConfigError

    with pytest.raises(ConfigError, match="(?s)SKEWLESS_FS_TOKENS=<hidden>.*SKEWLESS_FS_MAX_ENTITIES='0'"):
        FeatureServerConfig.from_env({"SKEWLESS_FS_TOKENS": " , ", "SKEWLESS_FS_MAX_ENTITIES": "0"})
    secret.write_text("\n \n")
    with pytest.raises(ConfigError, match="SKEWLESS_FS_TOKEN_FILE"):
        FeatureServerConfig.from_env({"SKEWLESS_FS_TOKEN_FILE": str(secret)}).all_tokens()
    with pytest.raises(ConfigError, match="cannot read"):
        FeatureServerConfig(token_file=str(tmp_path / "missing")).all_tokens()


def test_limits_413_and_422_with_a_clear_message(repo):
    cfg = FeatureServerConfig(repo=str(repo), tokens=(TOKEN,), max_body_bytes=2000, max_entities=10,
                              max_push_rows=3)
    with running(cfg) as (client, _):
        big = client.post("/get-online-features", json={"features": ["driver_stats:conv_rate"],
                                                         "entities": {"driver_id": list(range(1000))}})
        assert big.status_code == 413 and "at most 2,000" in big.json()["message"]
        many = client.post("/get-online-features", json={"features": ["driver_stats:conv_rate"],
                                                          "entities": {"driver_id": list(range(11))}})
        assert many.status_code == 422 and "11 entities in one request; at most 10" in many.json()["message"]
        rows = client.post("/push", json={"push_source_name": "driver_stats", "df": {"driver_id": [1, 2, 3, 4]}})
        assert rows.status_code == 422 and "4 rows in one request; at most 3" in rows.json()["message"]
        assert client.post("/get-online-features", json={"features": ["driver_stats:conv_rate"],
                                                          "entities": {"driver_id": list(range(10))}}).status_code == 200


BAD = yaml.safe_load((FIXTURES / "bad_inputs" / "feature_server_http.yaml").read_text())


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_inputs_are_typed_4xx_and_write_nothing(server, case):
    r = server.post(case["path"], content=case["raw"].encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == case["status"], r.text
    assert r.json()["error"] == case["error"] and r.json()["message"]
    assert read(server, ["driver_stats:conv_rate"], [1])["results"][1]["values"] == [0.1]


def test_health_metrics_docs_without_a_cdn(server):
    assert server.get("/health").json() == {"status": "ok"}
    read(server, ["driver_stats:conv_rate"], [1, 2])
    text = server.get("/metrics").text
    assert 'skewless_fs_requests_total{route="get-online-features",status="200"} 1.0' in text
    assert "skewless_fs_entities_bucket" in text and "process_cpu_seconds_total" in text
    page = server.get("/docs").text
    assert "http" not in page.replace('charset="utf-8"', "")  # nothing fetched from elsewhere
    assert server.get("/docs/swagger-ui-bundle.js").status_code == 200
    doc = server.get("/openapi.json").json()
    assert "driver_stats:conv_rate" in doc["components"]["schemas"]["OnlineRequest"]["properties"]["features"][
        "items"]["enum"]
    assert server.get("/get-online-features").status_code == 405


def test_cli_serve_refuses_bad_settings_in_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["serve", "--repo", str(tmp_path)], env={"SKEWLESS_FS_PORT": "http"})
    assert r.exit_code == 1 and "SKEWLESS_FS_PORT='http'" in r.output


def test_online_push_keeps_ingests_winner_rules(server):
    """An entity twice in one push: the newer row wins (the engine's path); a row later than now is not true yet,
    as ingest has it; a row older than the stored one loses (newest-wins). Rows that are each their entity's winner
    are written without the engine (materialize._own_winners): the same answers."""
    now = utc_now().replace(microsecond=0)
    older, future = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=1)).isoformat()
    r = server.post("/push", json={"push_source_name": "driver_stats", "df": {
        "driver_id": [1, 1, 2], "conv_rate": [0.5, 0.6, 0.7], "trips": [5, 6, 7],
        "event_timestamp": [now.isoformat(), older, future]}})
    assert r.status_code == 200, r.text
    assert read(server, ["driver_stats:conv_rate"], [1, 2])["results"][1]["values"] == [0.5, 0.2]
    stale = server.post("/push", json={"push_source_name": "driver_stats", "df": {
        "driver_id": [1, 3], "conv_rate": [0.9, 0.8], "trips": [9, 8], "event_timestamp": [older, now.isoformat()]}})
    assert stale.status_code == 200
    assert read(server, ["driver_stats:conv_rate"], [1, 3])["results"][1]["values"] == [0.5, 0.8]
