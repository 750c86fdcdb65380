"""Batch sources, entity tables and training sets on OSS (the local OSS shim, written and read back with oss2 as
users do): Parquet/CSV/SQL sources ingest, incrementally by watermark, with the OSS options taken from the offline
store's when it is on OSS too; an entity glob on OSS; `to_parquet("oss://...")` streamed."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import oss2
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import skewless as sk
from skewless.errors import ConfigError
from tests.support.object_store import fresh_prefix, object_store_repo

BUCKET = "skewless-oss-tests"
REGION = "cn-hangzhou"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def endpoint(oss_endpoint, moto_endpoint, local_cloud):
    local_cloud.ensure_bucket(BUCKET, moto_endpoint)
    return oss_endpoint


@pytest.fixture
def bucket(endpoint):
    return oss2.Bucket(oss2.AuthV4("test", "test"), endpoint, BUCKET, region=REGION)


@pytest.fixture
def store(tmp_path, endpoint):
    opts = {"endpoint": endpoint, "region": REGION, "access_key_id": "test", "access_key_secret": "test"}
    return object_store_repo(tmp_path, f"oss://{BUCKET}", opts, "osssources")


def rows(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"k": range(start, start + n), "event_timestamp": [T0 + timedelta(hours=i) for i in
                                                                           range(start, start + n)],
                         "x": [float(i) for i in range(start, start + n)]})


def put_parquet(bucket, key: str, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    bucket.put_object(key, buf.getvalue())


def test_sources_on_oss_ingest_and_incrementally(store, bucket):
    prefix = fresh_prefix()
    put_parquet(bucket, f"{prefix}/events/dt=2024-01-01/a.parquet", rows(0, 3))
    bucket.put_object(f"{prefix}/csv/all.csv", rows(0, 3).to_csv(index=False).encode())
    url = f"oss://{BUCKET}/{prefix}"
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    sources = {"pq": sk.ParquetSource(f"{url}/events/*/*.parquet", watermark="event_timestamp"),
               "csv": sk.CsvSource(f"{url}/csv"),
               "sql": sk.SqlSource("SELECT * FROM t", tables={"t": sk.ParquetSource(f"{url}/events")},
                                   watermark="event_timestamp"),
               "delta": sk.DeltaSource(f"{url}/delta")}
    store.apply([e] + [sk.FeatureView(n, [e], [sk.Field("x", sk.Float64)], source=s) for n, s in sources.items()])
    for name in ("pq", "csv", "sql"):
        assert store.ingest(name).rows == 3, name
    put_parquet(bucket, f"{prefix}/events/dt=2024-01-02/b.parquet", rows(3, 2))
    assert store.ingest("pq").rows == 2 and store.ingest("sql").rows == 2
    assert store.ingest("pq").rows == 0
    got = store.get_online_features(["pq:x", "sql:x", "csv:x"], [{"k": 4}, {"k": 1}],
                                    full_feature_names=True).to_dict()
    assert got["pq__x"] == got["sql__x"] == [4.0, 1.0] and got["csv__x"] == [None, 1.0]
    with pytest.raises(ConfigError, match="Delta sources cannot be read from"):
        store.ingest("delta")


def test_entity_glob_on_oss_and_training_set_written_to_oss(store, bucket):
    prefix = fresh_prefix()
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)])])
    store.ingest("v", rows(0, 5))
    entity = pd.DataFrame({"k": [4, 0, 2, 7], "event_timestamp": [T0 + timedelta(days=1)] * 4})
    put_parquet(bucket, f"{prefix}/entities/part-0.parquet", entity.iloc[:2])
    put_parquet(bucket, f"{prefix}/entities/part-1.parquet", entity.iloc[2:])
    job = store.get_historical_features(f"oss://{BUCKET}/{prefix}/entities", ["v:x"])
    out = f"oss://{BUCKET}/{prefix}/training/set.parquet"
    job.to_parquet(out)
    got = pq.read_table(io.BytesIO(bucket.get_object(f"{prefix}/training/set.parquet").read())).to_pandas()
    assert got["k"].tolist() == [4, 0, 2, 7]
    assert [None if pd.isna(v) else v for v in got["x"]] == [4.0, 0.0, 2.0, None]
    assert bucket.object_exists(f"{prefix}/training/set.parquet.snapshot.json")


def test_a_training_set_that_fails_midway_leaves_no_object(store, bucket):
    """The OSS upload ran on close, even when the stream failed: a truncated Parquet file appeared at the URL."""
    from skewless import sources
    from tests.adapters.aws.test_s3_sources import broken_stream

    prefix = fresh_prefix()
    with pytest.raises(sk.errors.SkewlessError, match="producer failed"):
        sources.write_parquet_at(store.config, broken_stream(3), f"oss://{BUCKET}/{prefix}/set.parquet", {})
    assert not list(oss2.ObjectIterator(bucket, prefix=prefix))
