"""The MaxCompute offline store + engine (pyodps) against the local MaxCompute emulator: the offline conformance
suite, training sets equal to DuckDB's on the credit-scoring sample, all-or-nothing ingest, snapshots, materialize,
and typed errors."""

import uuid
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from tests.support.conformance.offline import H, OfflineConformance, define, frame

import skewless as sk
from skewless.adapters.alibaba.maxcompute import MaxComputeEngine
from skewless.errors import ConfigError, EngineError, StoreUnavailable, ValidationError

SECRET = "s3cr3t-never-printed"


def mc_repo(path, endpoint: dict, **overrides):
    """A repo whose histories live in MaxCompute (tables under a prefix of their own) and are computed there."""
    path.mkdir(parents=True, exist_ok=True)
    opts = {"endpoint": endpoint["endpoint"], "tunnel_endpoint": endpoint["tunnel_endpoint"],
            "access_id": endpoint["access_id"], "secret_access_key": endpoint["secret_access_key"],
            "table_prefix": f"t{uuid.uuid4().hex[:10]}_", **overrides}
    doc = {"project": "mctest", "registry": "data/registry",
           "offline": {"url": f"maxcompute://{endpoint['project']}", "engine": "maxcompute", "storage_options": opts},
           "online": "sqlite:///data/online.db"}
    (path / "skewless.yaml").write_text(yaml.safe_dump(doc))
    return sk.FeatureStore(path)


class TestMaxComputeConformance(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path, maxcompute_endpoint):
        return mc_repo(tmp_path / "repo", maxcompute_endpoint)


def test_history_is_date_partitioned_tables_and_the_engine_pushes_sql_down(tmp_path, maxcompute_endpoint):
    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store)
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (2, H(30), H(30), 2.0, "b")]))
    assert isinstance(store.engine, MaxComputeEngine)
    table = store.offline.client.odps.get_table(store.offline.history_table("v"))
    assert sorted(str(p.partition_spec) for p in table.partitions) == ["ds='20240101'", "ds='20240102'"]
    job = store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [H(2)]}), ["v:x"])
    assert "ROW_NUMBER() OVER" in job.sql and "`" in job.sql
    assert job.to_pandas()["x"].tolist() == [1.0]


def _config(endpoint: dict | None, prefix: str) -> str:
    offline = ({"url": f"maxcompute://{endpoint['project']}", "engine": "maxcompute",
                "storage_options": {**{k: endpoint[k] for k in ("endpoint", "tunnel_endpoint", "access_id",
                                                                 "secret_access_key")}, "table_prefix": prefix}}
               if endpoint else {"url": "data/offline", "engine": "duckdb"})
    return yaml.safe_dump({"project": "credit", "registry": "data/registry", "offline": offline,
                           "online": "sqlite:///data/online.db"})


def test_credit_scoring_training_set_equals_the_duckdb_engines(tmp_path, maxcompute_endpoint):
    from tests.support import e2e_pipeline

    runs, tables = {}, {}
    for name, endpoint in (("duckdb", None), ("maxcompute", maxcompute_endpoint)):
        repo = e2e_pipeline.scaffold_with_config(tmp_path / name, _config(endpoint, f"c{uuid.uuid4().hex[:10]}_"))
        runs[name] = run = e2e_pipeline.run(repo, sample=200)
        assert run["online"].equals(run["offline"]) and all(run["materialized"].values())  # materialize == PIT at now
        loans = pd.read_parquet(repo / "data" / "loan_table.parquet", columns=["loan_id", "zipcode",
                                                                               "event_timestamp", "loan_status"])
        tables[name] = run["store"].get_historical_features(loans, e2e_pipeline.SERVICE,
                                                            include_event_timestamps=True).to_arrow()
    assert isinstance(runs["maxcompute"]["store"].engine, MaxComputeEngine)
    assert tables["maxcompute"].schema == tables["duckdb"].schema  # the same Arrow types, column for column
    assert tables["maxcompute"].equals(tables["duckdb"])
    pd.testing.assert_frame_equal(runs["maxcompute"]["training"], runs["duckdb"]["training"])
    assert runs["maxcompute"]["training"]["loan_int_rate"].notna().sum() > 20_000  # not vacuous


def test_interrupted_ingest_leaves_nothing_visible(tmp_path, maxcompute_endpoint, monkeypatch):
    from skewless.adapters.alibaba.maxcompute_store import MaxComputeOfflineStore

    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store)
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
    ents = pd.DataFrame({"k": [1, 2], "event_timestamp": [H(100), H(100)]})
    before = store.get_historical_features(ents, ["v:x", "v:s"]).to_pandas()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("the process dies after uploading, before committing")
    monkeypatch.setattr(MaxComputeOfflineStore, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):  # rows over three date partitions are uploaded, never committed
        store.ingest("v", frame([(1, H(2), H(2), 9.0, "z"), (2, H(30), H(30), 9.0, "z"), (2, H(60), H(60), 9.0, "z")]))
    monkeypatch.undo()
    client = store.offline.client
    counted = client.execute(f"SELECT count(*) AS n FROM {store.offline.history_table('v')}", "count")
    rows = list(client.result(counted, "count", pa.schema([("n", pa.int64())])))
    assert rows[0].column(0).to_pylist() == [4]  # the stray rows are there ...
    assert store.offline.version("v") == 0  # ... but no version names them
    pd.testing.assert_frame_equal(store.get_historical_features(ents, ["v:x", "v:s"]).to_pandas(), before)
    assert store.ingest("v", frame([(2, H(3), H(3), 2.0, "b")])).version == 1  # the next ingest commits only its own rows
    got = store.get_historical_features(ents, ["v:x", "v:s"]).to_pandas()
    assert got["x"].tolist() == [1.0, 2.0] and got["s"].tolist() == ["a", "b"]


def test_snapshot_rebuilds_identically_from_a_fresh_process_view(tmp_path, maxcompute_endpoint):
    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store, ttl=timedelta(hours=10))
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a"), (2, H(2), H(2), 2.0, "b")]))
    ents = pd.DataFrame({"k": [1, 2, 3], "event_timestamp": [H(5), H(5), H(5)]})
    job = store.get_historical_features(ents, ["v:x", "v:s"], include_event_timestamps=True)
    first = job.to_arrow()
    store.ingest("v", frame([(1, H(4), H(4), 4.0, "c")]))
    fresh = sk.FeatureStore(store.repo_path)  # a new client: nothing cached
    again = fresh.get_historical_features(ents, ["v:x", "v:s"], snapshot=job.snapshot,
                                          include_event_timestamps=True).to_arrow()
    assert again.equals(first) and first.column("x").to_pylist() == [1.0, 2.0, None]
    assert fresh.get_historical_features(ents, ["v:x"]).to_pandas()["x"].tolist()[0] == 4.0


def test_concurrent_ingests_commit_distinct_versions_and_lose_nothing(tmp_path, maxcompute_endpoint):
    from concurrent.futures import ThreadPoolExecutor

    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store)
    writers = [sk.FeatureStore(store.repo_path) for _ in range(3)]

    def write(i):
        return [w.ingest("v", frame([(i * 10 + j, H(j), H(j), float(i * 10 + j), "w")])).version for j, w in
                enumerate([writers[i]] * 3)]
    with ThreadPoolExecutor(3) as pool:
        versions = sorted(v for vs in pool.map(write, range(3)) for v in vs)
    assert versions == list(range(9))
    keys = [i * 10 + j for i in range(3) for j in range(3)]
    got = store.get_historical_features(pd.DataFrame({"k": keys, "event_timestamp": [H(10)] * 9}), ["v:x"])
    assert got.to_pandas()["x"].tolist() == [float(k) for k in keys]


def test_unreachable_endpoint_is_store_unavailable_naming_it(tmp_path):
    endpoint = {"project": "p", "endpoint": "http://127.0.0.1:9/api", "tunnel_endpoint": None, "access_id": "id",
                "secret_access_key": SECRET}
    store = mc_repo(tmp_path / "repo", endpoint)
    with pytest.raises(StoreUnavailable) as info:
        store.offline.version("v")
    assert info.value.endpoint == "http://127.0.0.1:9/api" and "127.0.0.1:9" in str(info.value)
    assert SECRET not in str(info.value)


def test_bad_credentials_are_a_config_error_without_the_secret(tmp_path, maxcompute_endpoint, monkeypatch):
    store = mc_repo(tmp_path / "repo", {**maxcompute_endpoint, "secret_access_key": SECRET})
    with pytest.raises(ConfigError) as info:
        store.offline.version("v")
    assert "AccessKey" in str(info.value) and SECRET not in str(info.value)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    with pytest.raises(ConfigError, match="missing secret_access_key"):
        mc_repo(tmp_path / "repo2", {**maxcompute_endpoint, "secret_access_key": ""}).offline.version("v")


def test_a_failing_query_is_an_engine_error_with_the_maxcompute_message(tmp_path, maxcompute_endpoint):
    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store)
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
    table = store.offline.history_table("v")
    store.offline.client.execute(f"DROP TABLE {table}", "drop behind the store's back")
    with pytest.raises(EngineError, match="ODPS-") as info:
        store.get_historical_features(pd.DataFrame({"k": [1], "event_timestamp": [H(2)]}), ["v:x"]).to_pandas()
    assert table in str(info.value).lower()


def test_mismatched_store_and_engine_is_a_config_error(tmp_path):
    repo = sk.init_repo(tmp_path / "repo")
    define(repo)
    repo.ingest("v", frame([(1, H(1), H(1), 1.0, "a")]))
    files = {"v": repo.offline.files("v", repo.offline.version("v"))}
    with pytest.raises(ConfigError, match="maxcompute:// histories only"):
        MaxComputeEngine().historical(pd.DataFrame({"k": [1], "event_timestamp": [H(2)]}),
                                      [(repo.get_feature_view("v"), ["x"])], files, snapshot={"v": 0},
                                      features=["v:x"], timestamp_column="event_timestamp", full_feature_names=False,
                                      point_in_time="event", event_timestamps=False)


def test_an_interrupted_online_push_is_repaired_from_the_maxcompute_batch(tmp_path, maxcompute_endpoint, monkeypatch):
    from skewless import materialize as mat

    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    define(store)
    store.ingest("v", frame([(1, H(1), H(1), 1.0, "old"), (2, H(1), H(1), 2.0, "other")]))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("the process dies between the offline commit and the online push")
    monkeypatch.setattr(mat, "push_latest", crash)
    with pytest.raises(KeyboardInterrupt):
        store.ingest("v", frame([(1, H(2), H(2), 5.0, "new"), (1, H(3), H(3), 6.0, "newest")]))
    monkeypatch.undo()
    read = lambda: store.get_online_features(["v:s"], [{"k": 1}, {"k": 2}], now=H(10)).values["s"]  # noqa: E731
    assert read() == ["old", "other"]
    # only the pending write batch is scanned in MaxCompute (its winner per entity), not the whole history
    assert mat.repair_pending(store, [store.get_feature_view("v")]) == 1
    assert read() == ["newest", "other"]


def test_aggregations_stream_in_input_order_and_empty_histories_are_computed_here(tmp_path, maxcompute_endpoint):
    """Beyond the conformance cases (``to_arrow``): the streamed form zips every part (plain views' query, each
    aggregated view's query, a view without history computed locally) batch by batch in input order, and raises the
    Int64 overflow as the typed error there too."""
    from tests.support.conformance.offline_agg import HOUR_US, SCHEMA, agg_view, at

    store = mc_repo(tmp_path / "repo", maxcompute_endpoint)
    ent, view = agg_view("aggs", HOUR_US, [HOUR_US, 4 * HOUR_US], False, ("count", "sum", "last", "last_k(2)"))
    _, empty = agg_view("never_written", HOUR_US, [HOUR_US], False, ("count", "last_k(2)", "mean"))
    plain = sk.FeatureView("plain", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("p", sk.Float64)])
    store.apply([ent, view, empty, plain])
    rows = [{"k": 1 + h % 2, "event_timestamp": at(h * HOUR_US + 1), "created_timestamp": at(h * HOUR_US + 1),
             "x": float(h), "n": h, "s": str(h), "eid": None} for h in range(12)]
    store.ingest("aggs", pa.Table.from_pylist(rows, schema=SCHEMA))
    store.ingest("plain", pd.DataFrame({"k": [1], "event_timestamp": [at(0)], "created_timestamp": [at(0)],
                                        "p": [0.5]}))
    ents = pd.DataFrame({"k": [(i % 3) or None for i in range(40)], "event_timestamp": [at((i % 13) * HOUR_US)
                                                                                          for i in range(40)],
                         "i": range(40)})
    refs = ["aggs:x_last_2_4h", "plain:p", "aggs:n_sum_4h", "never_written:count_1h", "never_written:x_last_2_1h",
            "never_written:x_mean_1h", "aggs:count_1h"]
    job = store.get_historical_features(ents, refs, full_feature_names=True)
    whole = job.to_arrow()
    reader = job.to_reader(batch_rows=7)
    streamed = pa.Table.from_batches(list(reader), schema=reader.schema)
    assert streamed.equals(whole) and whole.column("i").to_pylist() == list(range(40))
    assert whole.column_names[3:] == ["aggs__x_last_2_4h", "aggs__n_sum_4h", "aggs__count_1h", "plain__p",
                                      "never_written__count_1h", "never_written__x_last_2_1h",
                                      "never_written__x_mean_1h"]
    assert whole.schema.field("aggs__x_last_2_4h").type == pa.list_(pa.float64())
    assert whole.schema.field("aggs__n_sum_4h").type == pa.int64()
    got = whole.to_pylist()
    # entity (k=1, t=5h): k=1 has the even hours; the 4h window (1h, 5h] holds the events at 2h+1 and 4h+1
    row = next(r for r in got if r["k"] == 1 and r["event_timestamp"] == at(5 * HOUR_US))
    assert row["aggs__x_last_2_4h"] == [4.0, 2.0] and row["aggs__n_sum_4h"] == 6 and row["plain__p"] == 0.5
    assert all(r["never_written__x_last_2_1h"] == [] and r["never_written__x_mean_1h"] is None and
               r["never_written__count_1h"] == 0 for r in got)  # no history: empty windows, computed here
    assert all(r["aggs__count_1h"] == 0 for r in got if r["k"] is None)
    assert sum(r["aggs__count_1h"] for r in got) > 5  # not vacuous
    big = [{**rows[0], "n": 3 * 2 ** 61, "event_timestamp": at(5 * HOUR_US + i), "created_timestamp": at(6 * HOUR_US)}
           for i in range(2)]
    store.ingest("aggs", pa.Table.from_pylist(big, schema=SCHEMA))
    with pytest.raises(ValidationError, match="aggs.*n_sum_4h.*Int64"):
        list(store.get_historical_features(ents, ["aggs:n_sum_4h"]).to_reader(batch_rows=7))
