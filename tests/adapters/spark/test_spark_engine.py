"""The Spark engine (local mode, the same SparkSession for every test): the offline conformance suite on local Delta
histories, and what only Spark has (``to_spark``, Parquet written by Spark, materialize through Spark's files)."""

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from tests.support.conformance.offline import H, OfflineConformance, define, frame

from skewless.adapters.spark.engine import SparkEngine

from .conftest import SPARK_OPTIONS, spark_config, spark_repo


class TestLocalDeltaSpark(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path):
        return spark_repo(tmp_path / "repo")


def test_engine_is_spark_and_the_sql_is_the_pit_definition_in_spark_sql(tmp_path):
    store = spark_repo(tmp_path / "repo")
    define(store)
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (1, H(3), H(3), 3.0, "c")]))
    job = store.get_historical_features(pd.DataFrame({"k": [1, 1], "event_timestamp": [H(2), H(4)]}), ["v:x"])
    assert isinstance(store.engine, SparkEngine)
    assert "ROW_NUMBER() OVER" in job.sql and "`" in job.sql
    df = job.to_spark()
    assert type(df).__module__.startswith("pyspark.sql")
    assert [r["x"] for r in df.collect()] == [1.0, 3.0]


def test_to_parquet_is_written_by_spark_as_part_files_in_input_order(tmp_path):
    store = spark_repo(tmp_path / "repo")
    define(store)
    store.ingest("v", frame([(k, H(1), H(1), float(k), "a") for k in range(100)]))
    ents = pd.DataFrame({"k": list(range(99, -1, -1)) * 3, "event_timestamp": [H(2)] * 300, "pos": range(300)})
    job = store.get_historical_features(ents, ["v:x", "v:s"])
    out = job.to_parquet(tmp_path / "train.parquet")
    parts = sorted(out.glob("part-*.parquet"))
    assert out.is_dir() and parts  # Spark's own output layout: never collected to the driver
    got = pq.read_table(out)
    assert got.column("pos").to_pylist() == list(range(300))
    assert got.column("x").to_pylist() == [float(k) for k in ents["k"]]
    assert (out.parent / "train.parquet.snapshot.json").exists()
    # written again to the same place: replaced, not appended to
    assert pq.read_table(job.to_parquet(out)).num_rows == 300


def test_materialize_through_spark_matches_historical_at_end(tmp_path):
    store = spark_repo(tmp_path / "repo")
    define(store)
    # history only (online=False): what is online comes from materialize alone
    store.ingest("v", frame([(k, H(h), H(h), float(k * 10 + h), f"s{h}") for k in range(30) for h in range(5)]),
                 online=False)
    store.ingest("v", frame([(k, H(2), H(9), -1.0, "late") for k in range(0, 30, 3)]), online=False)  # never wins
    assert store.get_online_features(["v:x"], [{"k": 1}]).to_dict()["x"] == [None]
    result = store.materialize(H(-10), H(3))
    assert [r.rows for r in result] == [30]
    online = store.get_online_features(["v:x", "v:s"], [{"k": k} for k in range(31)], now=H(3)).to_dict()
    hist = store.get_historical_features(pd.DataFrame({"k": range(31), "event_timestamp": [H(3)] * 31}),
                                         ["v:x", "v:s"]).to_pandas()
    assert online["x"][:30] == hist["x"].tolist()[:30] == [float(k * 10 + 3) for k in range(30)]
    assert online["x"][30] is None


def _config(engine: str) -> str:
    offline = {"url": "data/offline", "engine": engine, **({"options": SPARK_OPTIONS} if engine == "spark" else {})}
    return yaml.safe_dump({"project": "credit", "registry": "data/registry", "offline": offline,
                           "online": "sqlite:///data/online.db"})


def test_credit_scoring_training_set_equals_the_duckdb_engines(tmp_path):
    from tests.support import e2e_pipeline

    runs, tables = {}, {}
    for name in ("duckdb", "spark"):
        repo = e2e_pipeline.scaffold_with_config(tmp_path / name, _config(name))
        runs[name] = run = e2e_pipeline.run(repo, sample=200)
        assert run["online"].equals(run["offline"]) and all(run["materialized"].values())  # materialize == PIT at now
        loans = pd.read_parquet(repo / "data" / "loan_table.parquet", columns=["loan_id", "zipcode",
                                                                               "event_timestamp", "loan_status"])
        tables[name] = run["store"].get_historical_features(loans, e2e_pipeline.SERVICE,
                                                            include_event_timestamps=True).to_arrow()
    assert isinstance(runs["spark"]["store"].engine, SparkEngine)
    assert tables["spark"].schema == tables["duckdb"].schema  # the same Arrow types, column for column
    assert tables["spark"].equals(tables["duckdb"])
    pd.testing.assert_frame_equal(runs["spark"]["training"], runs["duckdb"]["training"])
    assert runs["spark"]["training"]["loan_int_rate"].notna().sum() > 20_000  # not vacuous
    assert runs["spark"]["materialized"] == runs["duckdb"]["materialized"]


def test_on_demand_transforms_over_a_spark_training_set_equal_the_duckdb_engines(tmp_path):
    import skewless as sk
    from tests.support.odt_repo import T0, make_repo

    duck = make_repo(tmp_path / "repo")
    spark_config(tmp_path / "repo")
    spark = sk.FeatureStore(tmp_path / "repo")  # the same histories, computed by Spark
    refs = ["stats:rate", "ratios:ratio", "ratios:big", "ratios:score", "per_trip:per_trip", "per_trip:hour"]
    ent = pd.DataFrame({"driver_id": [1, 2, 99, 1], "event_timestamp": [T0 + pd.Timedelta(days=1)] * 4,
                        "amount": [10.0, 200.0, 5.0, 1.0]})
    want = duck.get_historical_features(ent, refs).to_arrow()
    job = spark.get_historical_features(ent, refs)
    assert isinstance(spark.engine, SparkEngine)
    got = job.to_arrow()
    assert got.schema == want.schema and got.equals(want)
    assert job.to_reader(batch_rows=3).read_all().equals(want)
    assert pq.read_table(job.to_parquet(tmp_path / "t.parquet")).equals(want)


def test_kill_mid_materialize_on_spark_then_rerun_resumes_exactly(tmp_path):
    """kill -9 after the 2nd checkpoint of a materialize whose rows Spark computed: the rerun reads the same snapshot
    in the same key order (Spark's sorted part files) and resumes after exactly what the checkpoint covers."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.core import test_faults_materialize as fm

    fm.make_repo(tmp_path / "repo", store=spark_repo(tmp_path / "repo"))
    store = spark_repo(tmp_path / "repo")
    fm.fill(store)
    env = {**os.environ, "SKEWLESS_KILL_AT": "materialize.after_checkpoint:2"}
    proc = subprocess.run([sys.executable, "-c", fm.CHILD, str(tmp_path / "repo"), fm.START.isoformat(),
                           fm.END.isoformat(), str(fm.CHUNK)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads(store.online.get_meta("materialize/v"))
    assert state["rows_done"] == 2 * fm.CHUNK and not state["done"]
    [res] = store.materialize(fm.START, fm.END, chunk_rows=fm.CHUNK)
    assert (res.rows, res.resumed_from) == (fm.N, 2 * fm.CHUNK)
    fm.assert_online_exact(store)


def test_labels_and_splits_on_spark_equal_the_duckdb_engines(tmp_path):
    """The same histories computed by DuckDB and by Spark: label columns and the split column (time, entity, both)
    are identical, column for column, on every output path."""
    import skewless as sk
    from tests.support.conformance.offline_labels import FEATURES, LABELS, define_labelled

    duck = sk.init_repo(tmp_path / "repo")
    define_labelled(duck)
    duck.ingest("v", pd.DataFrame(FEATURES, columns=["k", "event_timestamp", "created_timestamp", "x"]))
    duck.ingest("outcome", pd.DataFrame(LABELS, columns=["k", "event_timestamp", "created_timestamp", "defaulted",
                                                         "loss"]))
    spark_config(tmp_path / "repo")
    spark = sk.FeatureStore(tmp_path / "repo")
    ents = pd.DataFrame({"k": [i % 11 for i in range(300)], "event_timestamp": [H(i % 37) for i in range(300)]})
    split = sk.Split(time={"validation": H(12), "test": H(25)}, entity={"train": 0.6, "validation": 0.2, "test": 0.2})
    for mode in ("event", "available"):
        want = duck.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted", "outcome:loss"], split=split,
                                            point_in_time=mode).to_arrow()
        job = spark.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted", "outcome:loss"], split=split,
                                            point_in_time=mode)
        assert isinstance(spark.engine, SparkEngine)
        got = job.to_arrow()
        assert got.schema == want.schema and got.equals(want)
        assert job.to_reader(batch_rows=50).read_all().equals(want)
        assert want.column("defaulted").null_count < 300 and want.column("split").null_count < 300  # not vacuous


def test_labels_alone_stay_spark_output_and_a_split_refuses_to_spark(tmp_path):
    import skewless as sk
    from skewless.errors import EngineError
    from tests.support.conformance.offline_labels import LABELS, define_labelled

    store = spark_repo(tmp_path / "repo")
    define_labelled(store)
    store.ingest("outcome", pd.DataFrame(LABELS, columns=["k", "event_timestamp", "created_timestamp", "defaulted",
                                                          "loss"]))
    ents = pd.DataFrame({"k": [1, 2], "event_timestamp": [H(1), H(2)]})
    job = store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"])
    assert [r["defaulted"] for r in job.to_spark().collect()] == [1, 0]  # Spark's own DataFrame
    split = store.get_historical_features(ents, ["v:x"], labels=["outcome:defaulted"], split=sk.Split(time={"test": H(2)}))
    with pytest.raises(EngineError, match="finished in Arrow"):
        split.to_spark()
    assert split.to_pandas()["split"].tolist() == ["train", "test"]


def test_parquet_written_here_is_read_with_the_schema_spark_would_infer(tmp_path):
    """The entity files the engine writes (DuckDB's Parquet) are read with their schema given, which must be what
    Spark infers, type by type, with the same rows; a type pyspark cannot map from Arrow falls back to inference."""
    import duckdb

    from skewless.adapters.spark.job import read_own_parquet
    from skewless.adapters.spark.session import SparkSettings, session

    spark = session(SparkSettings.from_options(SPARK_OPTIONS))
    path = str(tmp_path / "e.parquet")
    duckdb.sql("""COPY (SELECT i::BIGINT AS _skewless_entity_row, TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1
               SECOND AS event_timestamp, i::INTEGER AS k32, i::SMALLINT AS k16, i::TINYINT AS k8, 'k' || i AS ks,
               ('b' || i)::BLOB AS kb, i % 2 = 0 AS flag, i / 3 AS d, (i / 3)::FLOAT AS f, DATE '2024-01-01' + i::INTEGER AS day,
               TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL 1 MINUTE AS naive, (i / 7)::DECIMAL(18, 3) AS dec,
               (i / 7)::DECIMAL(38, 10) AS wide, [i, i + 1] AS xs, {'a': i, 'b': 'x'} AS st,
               CASE WHEN i % 5 = 0 THEN NULL ELSE i END AS maybe FROM range(50) t(i)) TO 'PATH' (FORMAT parquet)""".replace("PATH", path))
    got, inferred = read_own_parquet(spark, path), spark.read.parquet(path)
    assert got.schema == inferred.schema
    assert got.collect() == inferred.collect()
    unsigned = str(tmp_path / "u.parquet")
    duckdb.sql(f"COPY (SELECT i::UINTEGER AS u FROM range(3) t(i)) TO '{unsigned}' (FORMAT parquet)")
    assert read_own_parquet(spark, unsigned).schema == spark.read.parquet(unsigned).schema
