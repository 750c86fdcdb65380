"""Issue 5's end-to-end path on the local Alibaba cloud, configured the way a user gets it (`skewless local config
--cloud alibaba`): registry on OSS (the shim), histories in MaxCompute (the emulator), Tair online (the TairHash
emulator over Redis). Apply -> ingest -> training set through MaxCompute equal to the DuckDB engine's (same data
on OSS) -> materialize -> online reads equal historical retrieval at t = now."""

import uuid

import oss2
import pandas as pd
import yaml

from tests.support import e2e_pipeline
from skewless.adapters.alibaba.maxcompute import MaxComputeEngine
from skewless.adapters.alibaba.oss_delta import OSSOfflineStore
from skewless.localcloud.cloud import DEFAULT_BUCKET


def _oss_keys(doc: dict, prefix: str) -> list[str]:
    opts = doc["registry"]["options"]
    bucket = oss2.Bucket(oss2.AuthV4(opts["access_key_id"], opts["access_key_secret"]), opts["endpoint"],
                         DEFAULT_BUCKET, region=opts["region"])
    return [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix)]


def test_local_alibaba_cloud_end_to_end(tmp_path, local_cloud, oss_endpoint, maxcompute_endpoint, tair_url):
    local_cloud.up(["oss"])  # creates the bucket the generated config names
    project = f"ali{uuid.uuid4().hex[:8]}"
    runs, docs = {}, {}
    for engine in ("maxcompute", "duckdb"):
        docs[engine] = doc = local_cloud.config(f"{project}{engine[0]}", cloud="alibaba", engine=engine)
        repo = e2e_pipeline.scaffold_with_config(tmp_path / engine, yaml.safe_dump(doc))
        runs[engine] = run = e2e_pipeline.run(repo, sample=200)
        # the spec's invariant, through Tair: what serving reads is what training would have read at t = now
        assert all(run["materialized"].values())
        pd.testing.assert_frame_equal(run["online"], run["offline"])
        assert run["online"].notna().sum().sum() > 0

    mc, dd = runs["maxcompute"]["store"], runs["duckdb"]["store"]
    assert isinstance(mc.engine, MaxComputeEngine) and isinstance(dd.offline, OSSOfflineStore)
    assert mc.online.supports_per_field_ttl  # the TairHash path was probed and taken
    # Training sets through MaxCompute equal the embedded engine's on the same data, value for value.
    pd.testing.assert_frame_equal(runs["maxcompute"]["training"], runs["duckdb"]["training"])
    assert runs["maxcompute"]["training"]["loan_int_rate"].notna().sum() > 20_000  # not vacuous

    # Nothing stayed local: the registry (both repos) and the DuckDB repo's histories are objects in OSS.
    for engine, doc in docs.items():
        keys = _oss_keys(doc, doc["project"] + "/")
        assert any("/registry/" in k for k in keys), engine
        assert any(k.endswith(".parquet") for k in keys) == (engine == "duckdb"), engine
        assert not list((tmp_path / engine).glob("data/registry*")), engine
