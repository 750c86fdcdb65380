"""The Spark engine over histories on S3 (LocalStack's S3: the files staged to local disk through the store's pyarrow
filesystem, see docs/engines/spark.md), the Spark SQL mappings it relies on, run on Spark itself, and its typed
errors."""

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from tests.support.conformance.offline import H, define, frame
from tests.support.object_store import object_store_repo

from skewless.adapters.spark.engine import SparkEngine, to_spark_sql
from skewless.adapters.spark.session import SparkSettings
from skewless.errors import ConfigError, ValidationError

from .conftest import spark_config

BUCKET = "skewless-tests"


def test_histories_on_s3_are_staged_and_computed_by_spark(tmp_path, localstack_s3, local_cloud):
    local_cloud.ensure_bucket(BUCKET, localstack_s3)
    opts = {"endpoint_url": localstack_s3, "region": "us-east-1", "access_key_id": "test",
            "secret_access_key": "test"}
    object_store_repo(tmp_path / "repo", f"s3://{BUCKET}", opts, "sparks3")
    spark_config(tmp_path / "repo")
    import skewless as sk

    store = sk.FeatureStore(tmp_path / "repo")
    define(store, ttl=timedelta(hours=5))
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (2, H(1), H(1), 2.0, "b")]))
    store.ingest("v", frame([(1, H(3), H(3), 3.0, "c"), (1, H(2), H(9), 9.0, "late")]))
    files = store.offline.files("v", store.offline.version("v"))
    assert files.uris[0].startswith("s3://") and files.filesystem is not None
    ents = pd.DataFrame({"k": [1, 2, 1, 2], "event_timestamp": [H(2), H(2), H(4), H(7)]})
    got = store.get_historical_features(ents, ["v:x", "v:s"]).to_pandas()
    assert isinstance(store.engine, SparkEngine)
    assert [None if pd.isna(x) else x for x in got["x"]] == [9.0, 2.0, 3.0, None]  # TTL 5h: H(1) expired at H(7)
    assert store.materialize(H(0), H(10))[0].rows == 2
    online = store.get_online_features(["v:x"], [{"k": 1}, {"k": 2}], now=H(4)).to_dict()
    assert online["x"] == [3.0, 2.0]


def _spark():
    return SparkEngine({"master": "local[2]", "shuffle_partitions": 2}).spark


def test_the_duckdb_functions_mean_the_same_in_spark():
    """arg_max_null keeps a null value and skips a null ordering key; arg_max(v, o, k) gives the k newest, newest
    first, skipping null keys; epoch_us is exact to the microsecond; error() raises (the typed overflow error)."""
    sql = ("SELECT arg_max_null(v, o) AS last, arg_max(v, o, 2) AS last2, "
           "max(epoch_us(timestamp_micros(-1))) AS us FROM (VALUES (1, 5), (NULL, 6), (3, NULL), (4, 4)) AS t(v, o)")
    row = _spark().sql(to_spark_sql(sql)).collect()[0]
    assert (row["last"], list(row["last2"]), row["us"]) == (None, [None, 1], -1)
    engine = SparkEngine()
    with pytest.raises(ValidationError, match="view 'x': sum 'y' is outside Int64"):
        from skewless.aggregation.sql import overflow_message

        msg = overflow_message("x", "y").replace("'", "''")
        engine.table(to_spark_sql(f"SELECT error('{msg}') AS e"), pa.schema([("e", pa.string())]), "probe")
    assert "DECIMAL(38, 0)" in to_spark_sql("SELECT CAST(x AS HUGEINT) FROM t")
    assert sqlglot.transpile("SELECT var_samp(x) FROM t", read="duckdb", write="spark")[0] != \
        to_spark_sql("SELECT var_samp(x) FROM t")  # VAR_SAMP by name


def test_unknown_options_are_a_config_error():
    with pytest.raises(ConfigError, match="unknown spark engine options \\['mastr'\\]"):
        SparkSettings.from_options({"mastr": "local[1]"})
    with pytest.raises(ConfigError, match="shuffle_partitions must be an integer"):
        SparkSettings.from_options({"shuffle_partitions": "many"})


def test_without_java_the_engine_is_a_config_error_naming_the_package(tmp_path):
    """A process with no java on PATH and no JAVA_HOME: the first use of the engine says what to install."""
    import os
    import subprocess
    import sys

    code = ("from skewless.adapters.spark.engine import SparkEngine\n"
            "from skewless.errors import ConfigError\n"
            "try:\n    SparkEngine().spark\nexcept ConfigError as e:\n    print('CONFIG', e)\n")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # nothing in it
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "CONFIG the spark engine needs Java 17 or later" in out.stdout, out.stderr
    assert "openjdk-17-jre-headless" in out.stdout
