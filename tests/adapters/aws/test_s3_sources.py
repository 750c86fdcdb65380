"""Batch sources, entity tables and training sets on S3 (LocalStack and moto, written and read back with boto3 and
deltalake as users do): Parquet/CSV/Delta/SQL sources ingest, incrementally by watermark; an entity glob on S3;
`to_parquet("s3://...")` streamed."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

import skewless as sk
from skewless.errors import ValidationError
from tests.support.object_store import fresh_prefix, sources_repo

BUCKET = "skewless-sources"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _options(endpoint):
    return {"endpoint_url": endpoint, "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


@pytest.fixture(scope="module", params=["localstack", "moto"])
def endpoint(request):
    ep = request.getfixturevalue("localstack_s3" if request.param == "localstack" else "moto_endpoint")
    request.getfixturevalue("local_cloud").ensure_bucket(BUCKET, ep)
    return ep


@pytest.fixture
def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                        region_name="us-east-1")


@pytest.fixture
def store(tmp_path, endpoint):
    """A local repo whose sources' S3 options come from skewless.yaml's `sources:`."""
    return sources_repo(tmp_path, {"s3": _options(endpoint)})


def rows(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"k": range(start, start + n), "event_timestamp": [T0 + timedelta(hours=i) for i in
                                                                           range(start, start + n)],
                         "x": [float(i) for i in range(start, start + n)]})


def put_parquet(s3, key: str, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())


def test_sources_on_s3_ingest_and_incrementally(store, s3, endpoint):
    prefix = fresh_prefix()
    put_parquet(s3, f"{prefix}/events/a.parquet", rows(0, 3))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/csv/all.csv", Body=rows(0, 3).to_csv(index=False).encode())
    delta_opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                  "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_CONDITIONAL_PUT": "etag"}
    write_deltalake(f"s3://{BUCKET}/{prefix}/delta", pa.Table.from_pandas(rows(0, 3), preserve_index=False),
                    storage_options=delta_opts)
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    url = f"s3://{BUCKET}/{prefix}"
    sources = {"pq": sk.ParquetSource(f"{url}/events/*.parquet", watermark="event_timestamp"),
               "csv": sk.CsvSource(f"{url}/csv"), "delta": sk.DeltaSource(f"{url}/delta"),
               "sql": sk.SqlSource("SELECT * FROM t", tables={"t": sk.ParquetSource(f"{url}/events")})}
    store.apply([e] + [sk.FeatureView(n, [e], [sk.Field("x", sk.Float64)], source=s) for n, s in sources.items()])
    for name in sources:
        assert store.ingest(name).rows == 3, name
    assert store.ingest("pq").rows == 0
    put_parquet(s3, f"{prefix}/events/b.parquet", rows(3, 2))
    assert store.ingest("pq").rows == 2
    got = store.get_online_features(["pq:x", "delta:x", "csv:x", "sql:x"], [{"k": 4}, {"k": 2}],
                                    full_feature_names=True).to_dict()
    assert got["pq__x"] == [4.0, 2.0]
    assert got["delta__x"] == got["csv__x"] == got["sql__x"] == [None, 2.0]
    with pytest.raises(ValidationError, match="no Parquet file at"):
        sk.FeatureStore(store.repo_path).get_historical_features(f"{url}/nothing/*.parquet", ["pq:x"])


def test_entity_glob_on_s3_and_training_set_written_to_s3(store, s3):
    prefix = fresh_prefix()
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)])])
    store.ingest("v", rows(0, 5))
    entity = pd.DataFrame({"k": [4, 0, 2, 7], "event_timestamp": [T0 + timedelta(days=1)] * 4})
    put_parquet(s3, f"{prefix}/entities/part-0.parquet", entity.iloc[:2])
    put_parquet(s3, f"{prefix}/entities/part-1.parquet", entity.iloc[2:])
    job = store.get_historical_features(f"s3://{BUCKET}/{prefix}/entities/*.parquet", ["v:x"])
    out = f"s3://{BUCKET}/{prefix}/training/set.parquet"
    assert job.to_parquet(out) == out
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/training/set.parquet")["Body"].read()
    got = pq.read_table(io.BytesIO(body)).to_pandas()
    assert got["k"].tolist() == [4, 0, 2, 7]
    assert [None if pd.isna(v) else v for v in got["x"]] == [4.0, 0.0, 2.0, None]
    snap = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/training/set.parquet.snapshot.json")["Body"].read()
    assert b'"v"' in snap


def broken_stream(batches: int) -> pa.RecordBatchReader:
    """A training set's batches whose producer fails after ``batches`` of them (a query interrupted, a disk gone)."""
    schema = pa.schema([("k", pa.int64()), ("x", pa.float64())])

    def gen():
        for i in range(batches):
            yield pa.record_batch([pa.array(range(i * 1000, i * 1000 + 1000)), pa.array([1.0] * 1000)], schema=schema)
        raise OSError("the training set's producer failed")

    return pa.RecordBatchReader.from_batches(schema, gen())


def test_a_training_set_that_fails_midway_leaves_no_object(store, s3):
    """Closing an S3 upload completes it: written in place, a failed export left a valid Parquet file holding only
    the first batches where the training set should be."""
    from skewless import sources

    prefix = fresh_prefix()
    with pytest.raises(sk.errors.SkewlessError, match="producer failed"):
        sources.write_parquet_at(store.config, broken_stream(3), f"s3://{BUCKET}/{prefix}/set.parquet", {})
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0
