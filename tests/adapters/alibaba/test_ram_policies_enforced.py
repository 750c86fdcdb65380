"""The RAM policies `skewless.cloud_policies` generates, enforced on OSS requests by our OSS shim's RAM subset
(``skewless.localcloud.oss_ram``; a private shim started with ``--ram-policies`` in front of the session's moto):
with oss2 and with the skewless OSS offline store, a principal allowed to read one view's history reads it and gets
AccessDenied on another view's objects and listings; a writer writes only its view's prefix and audit records."""

from __future__ import annotations

import json
import socket
import sys

import oss2
import pandas as pd
import pytest
import yaml

import skewless as sk
from skewless.cloud_policies import cloud_policies
from skewless.errors import ConfigError, PermissionDenied
from skewless.localcloud.ports import http_ok
from skewless.process import Service
from tests.support.object_store import fresh_prefix

BUCKET = "skewless-ram-tests"
REGION = "cn-hangzhou"
T = pd.Timestamp("2024-01-01", tz="UTC")
KEYS = {"scoring": ("LTAIscoring0000", "scoring-secret"), "etl": ("LTAIetl000000000", "etl-secret")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_config(repo, endpoint, base, key=("test", "test")):
    opts = {"endpoint": endpoint, "region": REGION, "access_key_id": key[0], "access_key_secret": key[1]}
    doc = {"project": "gov", "registry": {"url": f"{base}/registry", "options": opts},
           "offline": {"url": f"{base}/offline", "engine": "duckdb", "storage_options": opts},
           "online": "sqlite:///online.db"}
    (repo / "skewless.yaml").write_text(yaml.safe_dump(doc))


def _denied(call) -> bool:
    try:
        call()
    except oss2.exceptions.OssError as exc:  # a HEAD's 403 has no body, so no code
        return exc.status == 403 and exc.code in ("AccessDenied", "", None)
    return False


def test_ram_policies_limit_each_principal_to_its_views(tmp_path, oss_endpoint, moto_endpoint, local_cloud):
    local_cloud.ensure_bucket(BUCKET, moto_endpoint)
    prefix = fresh_prefix()
    base = f"oss://{BUCKET}/{prefix}"
    repo = tmp_path / "repo"
    repo.mkdir()
    _write_config(repo, oss_endpoint, base)
    store = sk.FeatureStore(repo)
    ent = sk.Entity("customer", join_keys=["customer_id"])
    views = [sk.FeatureView(n, entities=[ent], schema=[sk.Field("customer_id", sk.Int64), sk.Field("x", sk.Float64)])
             for n in ("loan_apps", "payroll")]
    store.apply([ent, *views])
    for v in ("loan_apps", "payroll"):
        store.ingest(v, pd.DataFrame({"customer_id": [1, 2], "x": [1.0, 2.0], "event_timestamp": [T, T]}))
    store.apply([ent, *views, sk.Principal("scoring", alibaba_ram="acs:ram::1234:role/scoring"),
                 sk.Principal("etl", alibaba_ram="acs:ram::1234:user/etl"), sk.Principal("admin"),
                 sk.Role("analyst", ["read_offline"]), sk.Role("writer", ["ingest"]), sk.Role("owner", ["apply", "read_offline"]),
                 sk.Grant("scoring_trains", role="analyst", principals=["scoring"], resources=["view:loan_apps"]),
                 sk.Grant("etl_writes", role="writer", principals=["etl"], resources=["view:loan_apps"]),
                 sk.Grant("admins", role="owner", principals=["admin"])])
    policies = cloud_policies(sk.FeatureStore(repo).registry.state(), sk.FeatureStore(repo).config)["principals"]
    keys_file = tmp_path / "ram.json"
    keys_file.write_text(json.dumps({KEYS[p][0]: {"secret": KEYS[p][1], "policy": policies[p]["alibaba"]["policy"]}
                                     for p in KEYS}))

    admin = oss2.Bucket(oss2.AuthV4("test", "test"), oss_endpoint, BUCKET, region=REGION)
    objects = [o.key for o in oss2.ObjectIteratorV2(admin, prefix=f"{prefix}/")]
    loan = [k for k in objects if k.startswith(f"{prefix}/offline/loan_apps/")]
    payroll = [k for k in objects if k.startswith(f"{prefix}/offline/payroll/")]
    assert loan and payroll

    port, state = _free_port(), tmp_path / "shim"
    state.mkdir()
    shim = Service("oss-ram", "127.0.0.1", port,
                   lambda: [sys.executable, "-m", "skewless.localcloud.oss_shim", "--port", str(port), "--moto",
                            moto_endpoint, "--ram-policies", str(keys_file)],
                   lambda s: http_ok(f"http://{s.host}:{s.port}/_shim/health") is not None, start_timeout=30)
    shim.start(state)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        scoring = oss2.Bucket(oss2.AuthV4(*KEYS["scoring"]), endpoint, BUCKET, region=REGION)
        assert scoring.get_object(loan[0]).read()
        v1 = oss2.Bucket(oss2.Auth(*KEYS["scoring"]), endpoint, BUCKET)  # V1 signatures: the same decisions
        assert v1.get_object(loan[0]).read() and _denied(lambda: v1.get_object(payroll[0]))
        assert all(_denied(lambda k=k: scoring.get_object(k)) for k in payroll)
        assert _denied(lambda: scoring.head_object(payroll[0]))
        assert _denied(lambda: scoring.put_object(loan[0], b"x"))
        assert _denied(lambda: scoring.delete_object(loan[0]))
        assert _denied(lambda: scoring.copy_object(BUCKET, payroll[0], f"{prefix}/offline/loan_apps/stolen"))
        listed = [o.key for o in oss2.ObjectIteratorV2(scoring, prefix=f"{prefix}/offline/loan_apps/")]
        assert sorted(listed) == sorted(loan)
        # the listing's prefix condition is evaluated: another view's listing, or the whole bucket's, is refused
        for other in (f"{prefix}/offline/payroll/", f"{prefix}/", ""):
            assert _denied(lambda p=other: scoring.list_objects_v2(prefix=p))
        # the dummy key keeps its full access on this shim
        assert oss2.Bucket(oss2.AuthV4("test", "test"), endpoint, BUCKET, region=REGION).get_object(payroll[0]).read()

        # the skewless OSS offline store with the principal's key
        _write_config(repo, endpoint, base, KEYS["scoring"])
        as_scoring = sk.FeatureStore(repo, principal="scoring")
        entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T + pd.Timedelta("1h")] * 2})
        assert sorted(as_scoring.get_historical_features(entities, ["loan_apps:x"]).to_pandas()["x"]) == [1.0, 2.0]
        with pytest.raises(PermissionDenied):  # the SDK's own gate first (its denial recorded under audit/)
            as_scoring.get_historical_features(entities, ["payroll:x"])
        # a caller writing around the SDK's gate (claiming the admin's name) with scoring's key: OSS refuses
        with pytest.raises(ConfigError, match="payroll.*OSS refused the credentials .AccessDenied"):
            sk.FeatureStore(repo, principal="admin").get_historical_features(entities, ["payroll:x"]).to_pandas()

        etl = oss2.Bucket(oss2.AuthV4(*KEYS["etl"]), endpoint, BUCKET, region=REGION)
        assert _denied(lambda: etl.put_object(f"{prefix}/offline/payroll/x.parquet", b"x"))
        assert _denied(lambda: etl.put_object(f"{prefix}/registry/versions/x", b"x"))
        before = {o.key for o in oss2.ObjectIteratorV2(admin, prefix=f"{prefix}/")}
        _write_config(repo, endpoint, base, KEYS["etl"])
        sk.FeatureStore(repo, principal="etl").ingest("loan_apps", pd.DataFrame(
            {"customer_id": [3], "x": [3.0], "event_timestamp": [T]}))
        new = {o.key for o in oss2.ObjectIteratorV2(admin, prefix=f"{prefix}/")} - before
        assert {k for k in new if "/offline/loan_apps/" in k} and {k for k in new if "/registry/audit/" in k}
        assert all(k.startswith((f"{prefix}/offline/loan_apps/", f"{prefix}/registry/audit/")) for k in new), new
    finally:
        shim.stop(state)
