"""The credit-scoring sample as a ready repo: scaffolded, applied, ingested and materialized, with a loan -> zipcode
view so a model server's requests carry a loan id only (the zipcode is looked up online). Shared by the serving
benchmark (bench/serving_bench.py) and the serving tests, so both measure and check the same repo."""

from __future__ import annotations

from pathlib import Path

from .repo import load_objects
from .scaffold import scaffold
from .store import FeatureStore
from .timeutil import now as utc_now

LOAN_ZIPCODE = '''
import skewless as sk
from features import loan
loan_zipcode = sk.FeatureView("loan_zipcode", entities=[loan],
    schema=[sk.Field("loan_id", sk.Int64), sk.Field("zipcode", sk.Int64)],
    source=sk.ParquetSource("data/loan_table.parquet", timestamp_field="event_timestamp",
                            created_timestamp_column="created_timestamp"))
'''


def credit_repo(path: Path, online_yaml: str | None = None) -> FeatureStore:
    """The credit-scoring sample at ``path`` with a loan -> zipcode view; ``online_yaml`` replaces the online store's
    ``url: sqlite:///data/online.db`` line of skewless.yaml (e.g. ``"url: redis://...\\n  options: {...}"``)."""
    scaffold(path, force=True)
    (path / "loan_zipcode.py").write_text(LOAN_ZIPCODE)
    if online_yaml:
        cfg = (path / "skewless.yaml").read_text().replace("url: sqlite:///data/online.db", online_yaml)
        (path / "skewless.yaml").write_text(cfg)
    store = FeatureStore(path)
    store.apply(load_objects(path), prune=True)
    for v in store.list_feature_views():
        store.ingest_source(v.name)
    store.materialize_incremental(utc_now())
    return store
