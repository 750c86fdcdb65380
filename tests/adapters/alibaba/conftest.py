"""What the OSS tests share: the bucket on the local cloud's OSS-protocol shim (oss2 -> shim -> moto's S3), an oss2
client on it, and a feature repo whose registry and histories live under a fresh prefix of it."""

from __future__ import annotations

import oss2
import pytest

from tests.support.object_store import object_store_repo

BUCKET = "skewless-oss-tests"
REGION = "cn-hangzhou"


def oss_options(endpoint, **extra):
    return {"endpoint": endpoint, "region": REGION, "access_key_id": "test", "access_key_secret": "test", **extra}


def oss_repo(tmp_path, endpoint, project="osstest"):
    return object_store_repo(tmp_path, f"oss://{BUCKET}", oss_options(endpoint), project)


def oss_keys(bucket, prefix):
    """The keys under ``prefix``, listed with oss2."""
    return [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix)]


@pytest.fixture(scope="session")
def oss(oss_endpoint, moto_endpoint, local_cloud):
    local_cloud.ensure_bucket(BUCKET, moto_endpoint)  # buckets are moto's: the shim fronts them
    return oss_endpoint


@pytest.fixture
def bucket(oss):
    return oss2.Bucket(oss2.AuthV4("test", "test"), oss, BUCKET, region=REGION)
