"""The S3 offline store and registry pass the offline and registry conformance suites against both LocalStack's S3
and moto's S3 (real HTTP servers on loopback), and fail with typed errors when S3 is unreachable or refuses."""

import time

import boto3
import pytest
from tests.support.conformance.offline import OfflineConformance
from tests.support.forget_checkpoint import check_purge_after_a_checkpoint_erases_the_rows
from tests.support.conformance.registry import RegistryStoreConformance
from tests.support.object_store import (check_concurrent_applies_never_lose_an_update,
                                        check_endpoint_that_never_answers_fails_within_bounds,
                                        check_forget_leaves_nothing_in_the_bucket,
                                        check_permissions_and_audit_log_in_the_store,
                                        check_history_lives_in_the_store_and_drop_removes_it,
                                        check_stages_in_the_store, fresh_prefix, object_store_repo)

from skewless.adapters.aws.s3 import S3OfflineStore, S3RegistryStore
from skewless.errors import ConfigError, StoreUnavailable

BUCKET = "skewless-tests"
SECRET = "s3cr3t-never-printed"


def _options(endpoint):
    return {"endpoint_url": endpoint, "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


@pytest.fixture(scope="session", params=["localstack", "moto"])
def s3_endpoint(request):
    endpoint = request.getfixturevalue("localstack_s3" if request.param == "localstack" else "moto_endpoint")
    request.getfixturevalue("local_cloud").ensure_bucket(BUCKET, endpoint)
    return endpoint


class TestS3Registry(RegistryStoreConformance):
    @pytest.fixture
    def registry_store(self, s3_endpoint):
        return S3RegistryStore(f"s3://{BUCKET}/{fresh_prefix()}/registry", _options(s3_endpoint))


def s3_repo(tmp_path, endpoint, project="s3test"):
    return object_store_repo(tmp_path, f"s3://{BUCKET}", _options(endpoint), project)


class TestS3DeltaDuckDB(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path, s3_endpoint):
        return s3_repo(tmp_path, s3_endpoint)


def _lister(s3_endpoint):
    """The object keys under a prefix of the bucket, listed with boto3 (not through skewless)."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    return lambda prefix: [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_history_really_lives_in_s3_and_drop_removes_it(tmp_path, s3_endpoint):
    check_history_lives_in_the_store_and_drop_removes_it(tmp_path, s3_repo(tmp_path, s3_endpoint),
                                                         _lister(s3_endpoint))


def test_permissions_and_audit_log_on_an_s3_registry(tmp_path, s3_endpoint):
    check_permissions_and_audit_log_in_the_store(s3_repo(tmp_path, s3_endpoint), _lister(s3_endpoint))


def test_stages_on_an_s3_registry(tmp_path, s3_endpoint):
    check_stages_in_the_store(s3_repo(tmp_path, s3_endpoint), _lister(s3_endpoint))


def test_unreachable_endpoint_is_store_unavailable_fast_and_names_it():
    opts = {**_options("http://127.0.0.1:9"), "secret_access_key": SECRET, "max_attempts": 2, "connect_timeout": 1}
    reg = S3RegistryStore(f"s3://{BUCKET}/x", opts)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        reg.versions()
    assert time.monotonic() - t0 < 10
    assert "127.0.0.1:9" in str(info.value) and info.value.endpoint == "http://127.0.0.1:9"
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.__cause__)
    off = S3OfflineStore(f"s3://{BUCKET}/x", opts)
    with pytest.raises(StoreUnavailable) as info:
        off.version("v")
    assert SECRET not in str(info.value)


def test_missing_bucket_and_bad_options_are_config_errors(s3_endpoint):
    with pytest.raises(ConfigError, match="bucket does not exist"):
        S3RegistryStore("s3://no-such-bucket-here/r", _options(s3_endpoint)).versions()
    with pytest.raises(ConfigError, match="unknown S3 options"):
        S3RegistryStore(f"s3://{BUCKET}/r", {"endpoint": "x"})
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        S3RegistryStore("s3:///nobucket", {})


def test_concurrent_applies_on_s3_never_lose_an_update(tmp_path, s3_endpoint):
    """Six stores apply different views on one S3 registry at once (see object_store)."""
    check_concurrent_applies_never_lose_an_update(tmp_path, s3_repo(tmp_path, s3_endpoint))


def test_endpoint_that_never_answers_fails_within_the_configured_bounds():
    def calls(endpoint):
        opts = {**_options(endpoint), "read_timeout": 1, "max_attempts": 2}
        return (lambda: S3RegistryStore(f"s3://{BUCKET}/x", opts).versions(),
                lambda: S3OfflineStore(f"s3://{BUCKET}/x", opts).version("v"))
    check_endpoint_that_never_answers_fails_within_bounds(calls)


def test_forget_leaves_nothing_of_the_entity_in_s3(tmp_path, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    check_forget_leaves_nothing_in_the_bucket(
        s3_repo(tmp_path, s3_endpoint),
        lambda prefix: [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])],
        lambda key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.mark.parametrize("log_cleaned", [False, True])
def test_a_purge_after_a_checkpoint_dropped_the_removals_still_erases_the_rows_in_s3(tmp_path, s3_endpoint,
                                                                                      log_cleaned):
    """Every Parquet object under the history, listed and read with boto3, is free of the erased rows; also once
    Delta's log cleanup removed the delete's commit entry (S3 objects cannot be aged: the store's guard for
    writers' uncommitted files, an hour, is lowered instead)."""
    import io

    import pyarrow.parquet as pq

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    store = s3_repo(tmp_path, s3_endpoint)
    age = (lambda by: setattr(store.offline, "unread_min_age_hours", 0)) if log_cleaned else None

    def parquet_files():
        prefix = store.offline.loc.key("people") + "/"
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
                for o in page.get("Contents", [])]
        return {k[len(prefix):]: pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()))
                for k in keys if k.endswith(".parquet")}

    check_purge_after_a_checkpoint_erases_the_rows(store, parquet_files, age)
