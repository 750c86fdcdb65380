"""The S3 offline store and registry pass the offline and registry conformance suites against both LocalStack's S3
and moto's S3 (real HTTP servers on loopback), and fail with typed errors when S3 is unreachable or refuses."""

import time
import uuid

import boto3
import pytest
import yaml
from conformance.offline import OfflineConformance
from conformance.registry import RegistryStoreConformance

import skewless as sk
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


def _prefix():
    return f"t-{uuid.uuid4().hex[:12]}"


class TestS3Registry(RegistryStoreConformance):
    @pytest.fixture
    def registry_store(self, s3_endpoint):
        return S3RegistryStore(f"s3://{BUCKET}/{_prefix()}/registry", _options(s3_endpoint))


def s3_repo(tmp_path, endpoint, project="s3test"):
    prefix = _prefix()
    doc = {"project": project,
           "registry": {"url": f"s3://{BUCKET}/{prefix}/registry", "options": _options(endpoint)},
           "offline": {"url": f"s3://{BUCKET}/{prefix}/offline", "engine": "duckdb",
                       "storage_options": _options(endpoint)},
           "online": "sqlite:///online.db"}
    (tmp_path / "skewless.yaml").write_text(yaml.safe_dump(doc))
    return sk.FeatureStore(tmp_path)


class TestS3DeltaDuckDB(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path, s3_endpoint):
        return s3_repo(tmp_path, s3_endpoint)


def test_history_really_lives_in_s3_and_drop_removes_it(tmp_path, s3_endpoint):
    store = s3_repo(tmp_path, s3_endpoint)
    ent = sk.Entity("ent", join_keys=["k"])
    v = sk.FeatureView("v", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])
    store.apply([ent, v])
    import pandas as pd
    store.ingest("v", pd.DataFrame({"k": [1], "event_timestamp": [pd.Timestamp("2024-01-01", tz="UTC")], "x": [1.0]}))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    prefix = store.offline.loc.key("v") + "/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    assert any(k.endswith(".parquet") for k in keys) and any("_delta_log/" in k for k in keys)
    assert not list((tmp_path).glob("**/*.parquet"))  # nothing local
    store.offline.drop("v")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0


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
    """Six stores apply different views on one S3 registry at once: each lands or gets ConflictError, and every
    view that landed is in the final state (no update silently lost)."""
    import threading

    from skewless.errors import ConflictError

    first = s3_repo(tmp_path, s3_endpoint)
    ent = sk.Entity("ent", join_keys=["k"])
    first.apply([ent])
    barrier, outcomes = threading.Barrier(6), []

    def apply(i):
        store = sk.FeatureStore(tmp_path)
        view = sk.FeatureView(f"v{i}", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])
        store.registry.state()
        barrier.wait()
        try:
            store.apply([view])
            outcomes.append(("ok", f"v{i}"))
        except ConflictError:
            outcomes.append(("conflict", f"v{i}"))
    threads = [threading.Thread(target=apply, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = {name for status, name in outcomes if status == "ok"}
    assert len(outcomes) == 6 and winners
    state = first.registry.state()
    assert state.version == 1 + len(winners) and first.registry.store.versions() == list(range(1, state.version + 1))
    assert {v.name for v in state.list("feature_view")} == winners


def test_endpoint_that_never_answers_fails_within_the_configured_bounds():
    import socket

    with socket.socket() as hole:  # accepts connections (backlog) but never replies
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        opts = {**_options(f"http://127.0.0.1:{hole.getsockname()[1]}"), "read_timeout": 1, "max_attempts": 2}
        for call in (lambda: S3RegistryStore(f"s3://{BUCKET}/x", opts).versions(),
                     lambda: S3OfflineStore(f"s3://{BUCKET}/x", opts).version("v")):
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable):
                call()
            assert time.monotonic() - t0 < 15
