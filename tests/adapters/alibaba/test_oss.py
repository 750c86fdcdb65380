"""The OSS offline store and registry pass the offline and registry conformance suites against the local cloud's
OSS-protocol shim (oss2 -> shim -> moto's S3, real HTTP servers on loopback), keep histories as standard Delta
tables, and fail with typed errors that never carry the secret. The shim itself is checked with plain oss2."""

import logging
import os
import threading
import time

import oss2
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from tests.support.conformance.offline import OfflineConformance
from tests.support.conformance.registry import RegistryStoreConformance
from deltalake import DeltaTable
from tests.support.object_store import (check_concurrent_applies_never_lose_an_update,
                                        check_endpoint_that_never_answers_fails_within_bounds,
                                        check_permissions_and_audit_log_in_the_store,
                                        check_history_lives_in_the_store_and_drop_removes_it,
                                        check_stages_in_the_store, fresh_prefix, one_view, rows)

from skewless.adapters.alibaba.oss import OSSRegistryStore
from skewless.adapters.alibaba.oss_delta import OSSOfflineStore
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from skewless.errors import ConfigError, NotFoundError, StoreUnavailable

from .conftest import BUCKET, REGION, oss_keys, oss_options, oss_repo

SECRET = "s3cr3t-never-printed"
TOKEN = "t0ken-never-printed"
_options, _keys = oss_options, oss_keys


def _canonical(keys, batch):
    """History rows as the store takes them (what ingest hands over)."""
    ts = pd.Timestamp("2024-01-02", tz="UTC")
    return pa.table({"k": keys, EVENT_TS: [ts] * len(keys), CREATED_TS: [ts] * len(keys),
                     WRITE_BATCH: [batch] * len(keys), WRITE_ROW: list(range(len(keys))),
                     "x": [float(k) for k in keys]})


def _rows_at(store, version):
    """The keys of a view's rows at ``version``, scanned as engines do (the files and filesystem the store gives)."""
    files = store.files("v", version)
    paths = [u.split("://", 1)[1] for u in files.uris]
    return sorted(ds.dataset(paths, format="parquet", filesystem=files.filesystem).to_table().column("k").to_pylist())


# -- conformance ---------------------------------------------------------------------------------------------------
class TestOSSRegistry(RegistryStoreConformance):
    @pytest.fixture
    def registry_store(self, oss):
        return OSSRegistryStore(f"oss://{BUCKET}/{fresh_prefix()}/registry", _options(oss))


class TestOSSDeltaDuckDB(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path, oss):
        return oss_repo(tmp_path, oss)


# -- the stores ----------------------------------------------------------------------------------------------------
def test_history_really_lives_in_oss_and_drop_removes_it(tmp_path, oss, bucket):
    store = oss_repo(tmp_path, oss)
    check_history_lives_in_the_store_and_drop_removes_it(tmp_path, store, lambda prefix: _keys(bucket, prefix))


def test_permissions_and_audit_log_on_an_oss_registry(tmp_path, oss, bucket):
    check_permissions_and_audit_log_in_the_store(oss_repo(tmp_path, oss), lambda prefix: _keys(bucket, prefix))


def test_stages_on_an_oss_registry(tmp_path, oss, bucket):
    check_stages_in_the_store(oss_repo(tmp_path, oss), lambda prefix: _keys(bucket, prefix))


def test_history_is_a_standard_delta_table(tmp_path, oss, bucket):
    """Any Delta reader can open it: copied out of OSS as it is, deltalake reads every version and the rows."""
    store = oss_repo(tmp_path / "repo", oss)
    one_view(store)
    store.ingest("v", rows(1, 2))
    store.ingest("v", rows(3, x=2.0))
    prefix = store.offline.loc.key("v") + "/"
    copy = tmp_path / "copy"
    for key in _keys(bucket, prefix):
        (copy / key[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
        bucket.get_object_to_file(key, str(copy / key[len(prefix):]))
    assert (copy / "_delta_log" / "00000000000000000000.json").exists()
    latest = DeltaTable(str(copy))
    assert latest.version() == store.offline.version("v")
    assert sorted(latest.to_pyarrow_table().column("k").to_pylist()) == [1, 2, 3]
    first = DeltaTable(str(copy), version=0).to_pyarrow_table()
    assert sorted(first.column("k").to_pylist()) == [1, 2]


def test_concurrent_applies_on_oss_never_lose_an_update(tmp_path, oss):
    check_concurrent_applies_never_lose_an_update(tmp_path, oss_repo(tmp_path, oss))


def test_concurrent_appends_all_land_as_separate_versions_and_losers_leave_no_files(tmp_path, oss, bucket):
    """Writers in separate stores (separate log mirrors) append to one view at once: every append lands in its own
    commit (one version each; ties recomputed on the history it really commits on), nothing is lost, and the data
    files of the attempts that lost a race are gone."""
    first = oss_repo(tmp_path, oss)
    one_view(first)
    first.ingest("v", rows(0))
    barrier, errors = threading.Barrier(4), []

    def ingest(i):
        store = OSSOfflineStore(first.offline.url, _options(oss))
        assert store.version("v") == first.offline.version("v")  # every writer starts from a mirrored log
        barrier.wait()
        try:
            store.append("v", _canonical([10 + i], i + 2), batch=i + 2)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=ingest, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fresh = OSSOfflineStore(first.offline.url, _options(oss))
    files = fresh.files("v", fresh.version("v"))
    assert _rows_at(fresh, files.version) == [0, 10, 11, 12, 13]
    data_keys = {k for k in _keys(bucket, fresh.loc.key("v") + "/") if k.endswith(".parquet") and "_delta_log" not in k}
    assert data_keys == {u.removeprefix(f"oss://{BUCKET}/") for u in files.uris}


def test_checkpoints_are_used_and_old_versions_still_read(tmp_path, oss, bucket):
    """With a checkpoint every 2 commits, a fresh store fetches the newest checkpoint and the commits after it
    (not the whole log) and still opens every older version."""
    store = oss_repo(tmp_path, oss)
    one_view(store)
    store.ingest("v", rows(1))
    off = store.offline
    off._commit("v", off._table("v"), lambda dt: dt.alter.set_table_properties({"delta.checkpointInterval": "2"}))
    for k in (2, 3, 4):
        store.ingest("v", rows(k))
    log_keys = _keys(bucket, off._log_prefix("v"))
    assert any(k.endswith(".checkpoint.parquet") for k in log_keys)
    fresh = OSSOfflineStore(off.url, _options(oss))
    latest = fresh.version("v")
    mirrored = os.listdir(fresh._log("v").folder / "_delta_log")
    assert "00000000000000000000.json" not in mirrored and any(n.endswith(".checkpoint.parquet") for n in mirrored)
    assert _rows_at(fresh, latest) == [1, 2, 3, 4]
    assert _rows_at(fresh, 0) == [1]
    with pytest.raises(NotFoundError):
        fresh.files("v", latest + 1)


def test_a_dropped_and_recreated_view_is_not_read_from_a_stale_mirror(tmp_path, oss):
    a = oss_repo(tmp_path, oss)
    one_view(a)
    for k in (1, 2, 3):
        a.ingest("v", rows(k))
    assert a.offline.version("v") >= 2
    b = OSSOfflineStore(a.offline.url, _options(oss))
    b.drop("v")
    b.append("v", _canonical([9], 1), batch=1)
    assert a.offline.version("v") == 1  # a's mirror noticed: version 0 (the rows) and 1 (the tie flag)
    assert _rows_at(a.offline, 1) == [9]


# -- errors --------------------------------------------------------------------------------------------------------
def test_unreachable_endpoint_is_store_unavailable_fast_names_it_and_leaks_no_secret(caplog):
    caplog.set_level(logging.DEBUG)
    opts = {**_options("http://127.0.0.1:9"), "access_key_secret": SECRET, "security_token": TOKEN,
            "max_attempts": 2, "connect_timeout": 1}
    for call in (lambda: OSSRegistryStore(f"oss://{BUCKET}/x", opts).versions(),
                 lambda: OSSRegistryStore(f"oss://{BUCKET}/x", opts).create(1, b"{}"),
                 lambda: OSSOfflineStore(f"oss://{BUCKET}/x", opts).version("v")):
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert time.monotonic() - t0 < 10
        assert "127.0.0.1:9" in str(info.value) and info.value.endpoint == "http://127.0.0.1:9"
        for text in (str(info.value), repr(info.value.__cause__), str(info.value.__cause__)):
            assert SECRET not in text and TOKEN not in text
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_endpoint_that_never_answers_fails_within_the_configured_bounds():
    def calls(endpoint):
        opts = {**_options(endpoint), "read_timeout": 1, "max_attempts": 2}
        return (lambda: OSSRegistryStore(f"oss://{BUCKET}/x", opts).versions(),
                lambda: OSSRegistryStore(f"oss://{BUCKET}/x", opts).create(1, b"{}"),
                lambda: OSSOfflineStore(f"oss://{BUCKET}/x", opts).version("v"))
    check_endpoint_that_never_answers_fails_within_bounds(calls)


def test_bad_credentials_missing_bucket_and_bad_options_are_config_errors(oss, monkeypatch):
    wrong = OSSRegistryStore(f"oss://{BUCKET}/r", {**_options(oss), "access_key_secret": SECRET})
    with pytest.raises(ConfigError, match="refused the credentials .SignatureDoesNotMatch") as info:
        wrong.versions()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.__cause__)
    with pytest.raises(ConfigError, match="InvalidAccessKeyId"):
        OSSRegistryStore(f"oss://{BUCKET}/r", {**_options(oss), "access_key_id": "nobody"}).create(1, b"{}")
    with pytest.raises(ConfigError, match="does not exist"):
        OSSRegistryStore("oss://no-such-bucket-here/r", _options(oss)).versions()
    with pytest.raises(ConfigError, match="does not exist"):
        OSSOfflineStore("oss://no-such-bucket-here/r", _options(oss)).version("v")
    with pytest.raises(ConfigError, match="unknown OSS options"):
        OSSRegistryStore(f"oss://{BUCKET}/r", {"endpoint_url": "x"})
    with pytest.raises(ConfigError, match="oss://bucket/prefix"):
        OSSRegistryStore("oss:///nobucket", {})
    with pytest.raises(ConfigError, match="region"):
        OSSRegistryStore(f"oss://{BUCKET}/r", {"endpoint": oss, "access_key_id": "a", "access_key_secret": "b"})
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "OSS_ACCESS_KEY_ID",
                "OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ECS_METADATA"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="no Alibaba Cloud credentials"):
        OSSRegistryStore(f"oss://{BUCKET}/r", {"endpoint": oss, "region": REGION})


def test_credentials_come_from_the_environment(oss, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test")
    store = OSSRegistryStore(f"oss://{BUCKET}/{fresh_prefix()}/r", {"endpoint": oss, "region": REGION})
    store.create(1, b"{}")
    assert store.versions() == [1]
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID")
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)  # oss2's own variables, read at each request
    with pytest.raises(ConfigError, match="SignatureDoesNotMatch"):
        OSSRegistryStore(store.url, {"endpoint": oss, "region": REGION}).versions()


def test_region_is_read_from_an_aliyun_endpoint():
    store = OSSRegistryStore(f"oss://{BUCKET}/r", {"endpoint": "https://oss-cn-shanghai-internal.aliyuncs.com",
                                                   "access_key_id": "a", "access_key_secret": "b"})
    assert store.oss.region == "cn-shanghai"
    assert OSSRegistryStore(f"oss://{BUCKET}/r", {"region": "eu-central-1", "access_key_id": "a",
                                                  "access_key_secret": "b"}).oss.endpoint == \
        "https://oss-eu-central-1.aliyuncs.com"


# -- the shim, with plain oss2 -------------------------------------------------------------------------------------
def test_shim_lists_with_pagination_and_url_encoded_keys(bucket):
    prefix = fresh_prefix() + "/"
    names = [f"{prefix}k{i:02d}" for i in range(7)] + [f"{prefix}sub/a b+c%d.txt", f"{prefix}sub/ü"]
    for n in names:
        bucket.put_object(n, b"x")
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix, max_keys=3)] == sorted(names)
    assert [o.key for o in oss2.ObjectIterator(bucket, prefix=prefix, max_keys=3)] == sorted(names)
    page = bucket.list_objects_v2(prefix=prefix, max_keys=3)
    assert page.is_truncated and len(page.object_list) == 3 and page.object_list[0].type == "Normal"
    top = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix, delimiter="/")]
    assert f"{prefix}sub/" in top and f"{prefix}sub/ü" not in top
    assert sorted(bucket.batch_delete_objects(names).deleted_keys) == sorted(names)
    assert _keys(bucket, prefix) == []


def test_shim_resumable_upload_of_more_than_10_mb(bucket, tmp_path):
    data = os.urandom(12 * 1024 * 1024 + 5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    key = f"{fresh_prefix()}/big.bin"
    oss2.resumable_upload(bucket, key, str(path), store=oss2.ResumableStore(root=str(tmp_path)),
                          multipart_threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024, num_threads=2)
    head = bucket.head_object(key)
    assert head.content_length == len(data) and head.object_type == "Multipart"
    assert bucket.get_object(key).read() == data  # oss2 checks the whole-object CRC the shim sends
    assert bucket.get_object(key, byte_range=(10, 19)).read() == data[10:20]


def test_shim_forbid_overwrite_is_an_oss_conflict_and_keeps_the_first(bucket):
    key = f"{fresh_prefix()}/once"
    assert bucket.put_object(key, b"first", headers={"x-oss-forbid-overwrite": "true"}).crc is not None
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.put_object(key, b"second", headers={"x-oss-forbid-overwrite": "true"})
    assert (info.value.status, info.value.code) == (409, "FileAlreadyExists")
    assert bucket.get_object(key).read() == b"first"
    bucket.put_object(key, b"third")  # without the header an overwrite is allowed, as on OSS
    assert bucket.get_object(key).read() == b"third"


def test_shim_echoes_user_metadata(bucket):
    key = f"{fresh_prefix()}/meta"
    bucket.put_object(key, b"x", headers={"x-oss-meta-owner": "skewless", "Content-Type": "text/plain"})
    got = bucket.get_object(key)
    assert got.headers["x-oss-meta-owner"] == "skewless" and got.content_type == "text/plain"
    assert bucket.head_object(key).headers["x-oss-meta-owner"] == "skewless"
    assert bucket.get_object_meta(key).content_length == 1


def test_shim_checks_signatures_v1_and_v4_and_refuses_what_it_does_not_implement(oss, bucket):
    key = f"{fresh_prefix()}/signed"
    oss2.Bucket(oss2.Auth("test", "test"), oss, BUCKET).put_object(key, b"v1")
    assert bucket.get_object(key).read() == b"v1"
    for auth in (oss2.Auth("test", SECRET), oss2.AuthV4("test", SECRET)):
        with pytest.raises(oss2.exceptions.ServerError) as info:
            oss2.Bucket(auth, oss, BUCKET, region=REGION).get_object(key)
        assert (info.value.status, info.value.code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss2.Bucket(oss2.AnonymousAuth(), oss, BUCKET).get_object(key)
    assert info.value.status == 403
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.put_object_acl(key, oss2.OBJECT_ACL_PUBLIC_READ)
    assert (info.value.status, info.value.code) == (501, "NotImplemented") and "acl" in info.value.message
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.append_object(key + "-app", 0, b"x")
    assert info.value.status == 501


def test_shim_takes_streamed_uploads_of_unknown_length(bucket):
    key = f"{fresh_prefix()}/streamed"
    bucket.put_object(key, (f"part{i}-".encode() for i in range(4)))  # no length known: chunked transfer
    assert bucket.get_object(key).read() == b"part0-part1-part2-part3-"
