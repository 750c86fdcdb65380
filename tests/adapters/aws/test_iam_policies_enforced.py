"""The IAM policies `skewless.cloud_policies` generates, enforced by moto server's IAM on S3 requests (boto3 and the
skewless S3 offline store, with each principal's own access key): a principal allowed to read one view's history
reads it and gets AccessDenied on another view's objects; a writer writes only its views' prefixes.

LocalStack community does not enforce IAM (ENFORCE_IAM is a Pro feature), so this test runs a private moto server
(its auth switched on with /moto-api/reset-auth once the data and the users exist). moto checks each statement's
Action and Resource (globs) but evaluates only StringEquals conditions: the ``s3:prefix`` StringLike conditions of
the ListBucket statements are not checked here (their exact shape is in tests/core/test_cloud_policies.py)."""

from __future__ import annotations

import json
import socket
import sys

import boto3
import botocore.exceptions
import httpx
import pandas as pd
import pytest
import yaml

import skewless as sk
from skewless.cloud_policies import cloud_policies
from skewless.errors import PermissionDenied, StoreUnavailable
from skewless.localcloud.ports import http_ok
from skewless.process import Service

BUCKET = "gov-policies"
T = pd.Timestamp("2024-01-01", tz="UTC")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory):
    """A private moto server (auth off until the test switches it on: the shared one stays open)."""
    port, state = _free_port(), tmp_path_factory.mktemp("moto-auth")
    svc = Service("moto-auth", "127.0.0.1", port,
                  lambda: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                  lambda s: http_ok(f"http://{s.host}:{s.port}/moto-api/") is not None,
                  env={"MOTO_ALLOW_NONEXISTENT_REGION": "true"}, start_timeout=60)
    svc.start(state)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        svc.stop(state)


def _client(endpoint, key="test", secret="test", svc="s3"):
    return boto3.client(svc, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret)


def _options(endpoint, key="test", secret="test"):
    return {"endpoint_url": endpoint, "region": "us-east-1", "access_key_id": key, "secret_access_key": secret}


def _write_config(repo, endpoint, key="test", secret="test"):
    opts = _options(endpoint, key, secret)
    doc = {"project": "gov", "registry": {"url": f"s3://{BUCKET}/p/registry", "options": opts},
           "offline": {"url": f"s3://{BUCKET}/p/offline", "engine": "duckdb", "storage_options": opts},
           "online": "sqlite:///online.db"}
    (repo / "skewless.yaml").write_text(yaml.safe_dump(doc))


def _denied(call) -> bool:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"] == "AccessDenied"
    return False


def test_a_principal_limited_to_one_view_reads_its_objects_and_no_others(tmp_path, moto_with_auth):
    endpoint = moto_with_auth
    admin_s3 = _client(endpoint)
    admin_s3.create_bucket(Bucket=BUCKET)
    repo = tmp_path / "repo"
    repo.mkdir()
    _write_config(repo, endpoint)
    store = sk.FeatureStore(repo)
    ent = sk.Entity("customer", join_keys=["customer_id"])
    views = [sk.FeatureView(n, entities=[ent], schema=[sk.Field("customer_id", sk.Int64), sk.Field("x", sk.Float64)])
             for n in ("loan_apps", "payroll")]
    store.apply([ent, *views])
    for v in ("loan_apps", "payroll"):
        store.ingest(v, pd.DataFrame({"customer_id": [1, 2], "x": [1.0, 2.0], "event_timestamp": [T, T]}))
    arn = "arn:aws:iam::123456789012:user/{}"
    store.apply([ent, *views, sk.Principal("scoring", aws_iam=arn.format("scoring")),
                 sk.Principal("etl", aws_iam=arn.format("etl")), sk.Principal("admin"),
                 sk.Role("analyst", ["read_offline"]), sk.Role("writer", ["ingest"]),
                 sk.Role("owner", ["read_online", "read_offline", "ingest", "apply", "deploy", "view_ui"]),
                 sk.Grant("scoring_trains", role="analyst", principals=["scoring"], resources=["view:loan_apps"]),
                 sk.Grant("etl_writes", role="writer", principals=["etl"], resources=["view:loan_apps"]),
                 sk.Grant("admins", role="owner", principals=["admin"])])
    store = sk.FeatureStore(repo)
    policies = cloud_policies(store.registry.state(), store.config)["principals"]
    objects = {o["Key"] for o in admin_s3.list_objects_v2(Bucket=BUCKET, Prefix="p/offline/")["Contents"]}
    loan_files = sorted(k for k in objects if k.startswith("p/offline/loan_apps/"))
    payroll_files = sorted(k for k in objects if k.startswith("p/offline/payroll/"))
    assert loan_files and payroll_files

    iam = _client(endpoint, svc="iam")
    keys = {}
    for p in ("scoring", "etl"):
        iam.create_user(UserName=p)
        doc = policies[p]["aws"]
        assert doc["attach_to"] == {"kind": "user", "name": p, "id": arn.format(p)}
        policy_arn = iam.create_policy(PolicyName=f"gov-{p}", PolicyDocument=json.dumps(doc["policy"]))[
            "Policy"]["Arn"]
        iam.attach_user_policy(UserName=p, PolicyArn=policy_arn)
        k = iam.create_access_key(UserName=p)["AccessKey"]
        keys[p] = (k["AccessKeyId"], k["SecretAccessKey"])
    before = {o["Key"] for o in admin_s3.list_objects_v2(Bucket=BUCKET, Prefix="p/")["Contents"]}
    assert httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").status_code == 200
    try:
        assert _denied(lambda: _client(endpoint, "AKIAUNKNOWN000000000", "x").get_object(
            Bucket=BUCKET, Key=loan_files[0])) is False  # an unknown key is refused too (InvalidAccessKeyId)
        scoring = _client(endpoint, *keys["scoring"])
        assert scoring.get_object(Bucket=BUCKET, Key=loan_files[0])["Body"].read()
        assert all(_denied(lambda k=k: scoring.get_object(Bucket=BUCKET, Key=k)) for k in payroll_files)
        assert _denied(lambda: scoring.put_object(Bucket=BUCKET, Key=loan_files[0], Body=b"x"))
        assert _denied(lambda: scoring.delete_object(Bucket=BUCKET, Key=loan_files[0]))
        assert _denied(lambda: scoring.put_object(Bucket=BUCKET, Key="p/registry/x", Body=b"x"))

        # the skewless S3 offline store with the principal's own key: its view's history reads, the other's not
        _write_config(repo, endpoint, *keys["scoring"])
        as_scoring = sk.FeatureStore(repo, principal="scoring")
        entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T + pd.Timedelta("1h")] * 2})
        got = as_scoring.get_historical_features(entities, ["loan_apps:x"]).to_pandas()
        assert sorted(got["x"]) == [1.0, 2.0]
        with pytest.raises(PermissionDenied):  # the SDK's own gate first
            as_scoring.get_historical_features(entities, ["payroll:x"])
        # a caller writing around the SDK's gate (claiming the admin's name) with scoring's key: S3 refuses
        with pytest.raises(StoreUnavailable, match="payroll.*lacked the necessary privileges"):  # S3's 403
            sk.FeatureStore(repo, principal="admin").get_historical_features(entities, ["payroll:x"]).to_pandas()

        # the writer: its view's prefix (Delta files + the registry's audit record), nothing else
        etl = _client(endpoint, *keys["etl"])
        assert _denied(lambda: etl.put_object(Bucket=BUCKET, Key="p/offline/payroll/x.parquet", Body=b"x"))
        assert _denied(lambda: etl.get_object(Bucket=BUCKET, Key=payroll_files[0]))
        _write_config(repo, endpoint, *keys["etl"])
        sk.FeatureStore(repo, principal="etl").ingest("loan_apps", pd.DataFrame(
            {"customer_id": [3], "x": [3.0], "event_timestamp": [T]}))
    finally:
        assert httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf").status_code == 200
    after = {o["Key"] for o in admin_s3.list_objects_v2(Bucket=BUCKET, Prefix="p/")["Contents"]}
    new = after - before
    assert {k for k in new if k.startswith("p/offline/loan_apps/")} and {k for k in new if "/audit/" in k}
    assert all(k.startswith(("p/offline/loan_apps/", "p/registry/audit/")) for k in new), new
