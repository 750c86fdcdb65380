"""Feast 0.67's own client against the feature server: its ``remote`` online store (``path:`` our URL, our bearer
token through its auth) reads features, a feature service and writes online, unchanged (tests/support/feast_client)."""

from __future__ import annotations

import pytest
from tests.support.feast_client import ensure_venv, feast_reads
from tests.support.feature_server import TOKEN, driver_repo, running

from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.timeutil import now as utc_now


@pytest.fixture(scope="module")
def feast_python():
    return ensure_venv()


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_feasts_remote_online_store_reads_and_writes_through_the_server(feast_python, tmp_path, request, online):
    url = request.getfixturevalue("redis_url") if online == "redis" else None
    yaml = f"url: {url}\n  options: {{key_prefix: feast{tmp_path.name[-12:]}}}" if url else None
    driver_repo(tmp_path / "repo", online=yaml)
    with running(FeatureServerConfig(repo=str(tmp_path / "repo"), tokens=(TOKEN,))) as (client, _):
        written_at = utc_now().replace(microsecond=0).isoformat()
        out = feast_reads(feast_python, tmp_path / "feast", str(client.base_url), TOKEN, [2, 1, 99],
                          write=written_at)
        assert "error" not in out, out["error"]
        assert out["features"] == {"driver_id": [2, 1, 99], "conv_rate": [0.2, 0.1, None], "trips": [200, 100, None],
                                   "city": ["city2", "city1", None]}
        assert out["service"] == {"driver_id": [2, 1, 99], "driver_stats__conv_rate": [0.2, 0.1, None],
                                  "driver_profile__city": ["city2", "city1", None]}
        assert out["written"] == {"driver_id": [42], "conv_rate": [0.42]}
        # What Feast wrote is ours too: read through the server without Feast.
        r = client.post("/get-online-features", json={"features": ["driver_stats:trips"], "entities": {"driver_id": [42]}})
        assert r.json()["results"][1]["values"] == [4200]
        # And Feast with a wrong token is refused (it raises; nothing read).
        bad = feast_reads(feast_python, tmp_path / "feast-bad", str(client.base_url), "wrong", [1])
        assert "401" in bad["error"]
