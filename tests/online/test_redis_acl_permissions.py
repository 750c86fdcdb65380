"""Cloud-level least privilege on a real redis-server: `skewless permissions apply-redis-acl` makes one ACL user per
principal from the registry's grants; a principal limited to one view reads it through the skewless Redis online
store, and Redis itself (not skewless) refuses its reads of another view's keys and its writes (NOPERM)."""

from __future__ import annotations

import secrets
import uuid

import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

import skewless as sk
from skewless import config as config_mod
from skewless.cli.main import app
from skewless.errors import StoreUnavailable
from tests.support.feature_server import T0, driver_repo

runner = CliRunner(env={"COLUMNS": "250"})
USERS = {"scorer": "fs-scorer", "etl": "fs-etl", "admin": "fs-admin"}


@pytest.fixture
def governed(tmp_path, redis_url, monkeypatch):
    """driver_repo on the session's Redis (own key prefix), governed: scorer may read_online driver_stats only, etl
    may ingest driver_profile only, admin everything; their Redis users set by the CLI (passwords from the env)."""
    prefix = f"acl{uuid.uuid4().hex[:10]}"
    repo = tmp_path / "repo"
    store = driver_repo(repo, online=f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}")
    store.apply([*store.list_entities(), *store.list_feature_views(), *store.list_feature_services(),
                 *(sk.Principal(p) for p in USERS),
                 sk.Role("reader", ["read_online"]), sk.Role("writer", ["ingest"]),
                 sk.Role("owner", ["read_online", "read_offline", "ingest", "apply", "deploy", "view_ui"]),
                 sk.Grant("scorer_stats", role="reader", principals=["scorer"], resources=["view:driver_stats"]),
                 sk.Grant("etl_profile", role="writer", principals=["etl"], resources=["view:driver_profile"]),
                 sk.Grant("admins", role="owner", principals=["admin"])], prune=True)
    passwords = {p: secrets.token_hex(16) for p in USERS}
    for p, pw in passwords.items():
        monkeypatch.setenv(f"SKEWLESS_REDIS_PASSWORD_{p.upper()}", pw)
    admin = redis.Redis.from_url(redis_url)
    try:
        res = runner.invoke(app, ["permissions", "apply-redis-acl", "--repo", str(repo)])
        assert res.exit_code == 0, res.output
        assert "3 Redis users set" in res.output
        assert not any(pw in res.output for pw in passwords.values())  # never printed
        yield repo, prefix, passwords, admin
    finally:
        admin.acl_deluser(*USERS.values())
        keys = list(admin.scan_iter(match=f"{prefix}:*", count=10_000))
        if keys:
            admin.unlink(*keys)
        admin.close()


def as_user(repo, principal: str, password: str) -> sk.FeatureStore:
    """The repo's store connecting to Redis as ``principal``'s ACL user (the SDK principal is ``admin``: the SDK's
    own gate lets everything through, so what is refused is refused by Redis)."""
    cfg = config_mod.load(repo)
    cfg.online.options = {**cfg.online.options, "username": USERS[principal], "password": password, "retries": 0}
    return sk.FeatureStore(repo, config=cfg, principal="admin")


def test_a_principal_limited_to_one_view_cannot_read_another_views_keys(governed, redis_url):
    repo, prefix, passwords, admin = governed
    stats_key = next(admin.scan_iter(match=f"{prefix}:driver_stats:*"))
    profile_key = next(admin.scan_iter(match=f"{prefix}:driver_profile:*"))
    assert admin.acl_getuser(USERS["scorer"])["enabled"]

    scorer = as_user(repo, "scorer", passwords["scorer"])
    got = scorer.get_online_features(["driver_stats:conv_rate", "driver_stats:trips"],
                                     [{"driver_id": 1}, {"driver_id": 2}]).to_dict()
    assert got["conv_rate"] == [0.1, 0.2] and got["trips"] == [100, 200]
    with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError"):  # Redis refuses, whatever the SDK allows
        scorer.get_online_features(["driver_profile:city"], [{"driver_id": 1}])

    r = redis.Redis.from_url(redis_url, username=USERS["scorer"], password=passwords["scorer"])
    try:
        assert r.mget([stats_key]) == [admin.get(stats_key)]
        for refused in (lambda: r.mget([profile_key]), lambda: r.mget([stats_key, profile_key]),
                        lambda: r.get(profile_key), lambda: r.hgetall(f"{prefix}:__meta"),
                        lambda: r.set(stats_key, b"x"), lambda: r.unlink(stats_key), lambda: r.scan(0),
                        lambda: r.keys("*"), lambda: r.hset(f"{prefix}:__layouts", "x", "y"),
                        lambda: r.eval("return 1", 0)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                refused()
    finally:
        r.close()
    # the wrong password: no session at all
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(redis_url, username=USERS["scorer"], password="wrong").ping()


def test_writes_need_ingest_on_the_view(governed):
    repo, prefix, passwords, admin = governed
    before = {k: admin.get(k) for k in admin.scan_iter(match=f"{prefix}:driver_stats:*")}
    row = pd.DataFrame({"driver_id": [1], "conv_rate": [0.9], "trips": [900], "event_timestamp": [T0]})
    with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError"):  # the scorer reads driver_stats; it may not write it
        as_user(repo, "scorer", passwords["scorer"]).ingest("driver_stats", row)
    with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError") as refused:  # etl: driver_profile only
        as_user(repo, "etl", passwords["etl"]).ingest("driver_stats", row)
    assert "write to view 'driver_stats'" in str(refused.value)  # the row write itself (its checkpoint may move)
    assert {k: admin.get(k) for k in admin.scan_iter(match=f"{prefix}:driver_stats:*")} == before

    etl = as_user(repo, "etl", passwords["etl"])  # ... which it can: the whole write path (SET NX, EVALSHA)
    etl.ingest("driver_profile", pd.DataFrame({"driver_id": [1, 9], "city": ["paris", "oslo"],
                                               "event_timestamp": [T0 + pd.Timedelta("1h")] * 2}))
    got = as_user(repo, "admin", passwords["admin"]).get_online_features(
        ["driver_profile:city"], [{"driver_id": 1}, {"driver_id": 9}]).to_dict()
    assert got["city"] == ["paris", "oslo"]
    with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError"):  # write-only on its view: it reads no other view
        etl.get_online_features(["driver_stats:conv_rate"], [{"driver_id": 1}])


def test_aggregated_views_tiles_follow_the_same_rules(tmp_path, redis_url, monkeypatch):
    """Tiles of an aggregated view live under the view's key pattern too: its reader reads the aggregates (HMGET of
    tile hashes), its writer writes tiles (the tile script by EVALSHA), and neither reaches the plain view."""
    from datetime import datetime, timedelta, timezone

    from tests.support.agg_online import CARD, txn_view

    prefix = f"aclagg{uuid.uuid4().hex[:10]}"
    repo = tmp_path / "repo"
    store = sk.init_repo(repo, project="fs")
    (repo / "skewless.yaml").write_text((repo / "skewless.yaml").read_text().replace(
        "url: sqlite:///data/online.db", f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}"))
    store = sk.FeatureStore(repo)
    day = timedelta(days=1)
    txn = txn_view([sk.Aggregation("amount", "sum", day), sk.Aggregation(None, "count", 7 * day)])
    profile = sk.FeatureView("profile", [CARD], [sk.Field("card", sk.Int64), sk.Field("tier", sk.String)])
    store.apply([CARD, txn, profile])

    def txns(card, amount, when):
        return pd.DataFrame({"card": [card], "amount": [amount], "qty": [1], "merchant": ["m"],
                             "paid": [when], "txn": [f"t{card}{amount}"], "event_timestamp": [when]})
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    now = start + timedelta(hours=4)  # tiles expire after the longest window: recent events keep theirs
    store.ingest("txn", txns(1, 2.5, start))
    store.ingest("profile", pd.DataFrame({"card": [1], "tier": ["gold"], "event_timestamp": [start]}))
    store.apply([CARD, txn, profile, sk.Principal("scorer"), sk.Principal("etl"), sk.Principal("admin"),
                 sk.Role("reader", ["read_online"]), sk.Role("writer", ["ingest"]),
                 sk.Role("owner", ["read_online", "ingest", "apply"]),
                 sk.Grant("scorer_txn", role="reader", principals=["scorer"], resources=["view:txn"]),
                 sk.Grant("etl_txn", role="writer", principals=["etl"], resources=["view:txn"]),
                 sk.Grant("admins", role="owner", principals=["admin"])])
    passwords = {p: secrets.token_hex(16) for p in USERS}
    for p, pw in passwords.items():
        monkeypatch.setenv(f"SKEWLESS_REDIS_PASSWORD_{p.upper()}", pw)
    admin = redis.Redis.from_url(redis_url)
    try:
        res = runner.invoke(app, ["permissions", "apply-redis-acl", "--repo", str(repo)])
        assert res.exit_code == 0, res.output
        tile_key = next(admin.scan_iter(match=f"{prefix}:txn:*"))
        assert admin.type(tile_key) == b"hash"  # a tile hash, under the view's own pattern

        scorer = as_user(repo, "scorer", passwords["scorer"])
        got = scorer.get_online_features(["txn:amount_sum_1d", "txn:count_7d"], [{"card": 1}], now=now).to_dict()
        assert got["amount_sum_1d"] == [2.5] and got["count_7d"] == [1]
        with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError"):
            scorer.get_online_features(["profile:tier"], [{"card": 1}], now=now)
        with pytest.raises(StoreUnavailable, match="NOPERM|NoPermissionError"):
            scorer.ingest("txn", txns(1, 4.0, start + timedelta(hours=1)))

        as_user(repo, "etl", passwords["etl"]).ingest("txn", txns(1, 4.0, start + timedelta(hours=2)))
        got = scorer.get_online_features(["txn:amount_sum_1d", "txn:count_7d"], [{"card": 1}], now=now).to_dict()
        assert got["amount_sum_1d"] == [6.5] and got["count_7d"] == [2]
    finally:
        admin.acl_deluser(*USERS.values())
        keys = list(admin.scan_iter(match=f"{prefix}:*", count=10_000))
        if keys:
            admin.unlink(*keys)
        admin.close()
