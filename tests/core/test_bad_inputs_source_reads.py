"""The bad-input corpus of source reads and entity tables (tests/fixtures/bad_inputs/source_reads.yaml).

Sources: each case through `store.ingest(view)` and `skewless ingest VIEW` without a file: the typed error, one line,
nothing appended, and no file a hostile query meant to write. Entity tables: each through get_historical_features."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml

import skewless as sk
from skewless import errors

from tests.core.test_bad_inputs import cli_error, write_case
from tests.support.paths import FIXTURES

CORPUS = yaml.safe_load((FIXTURES / "bad_inputs" / "source_reads.yaml").read_text())
INGEST, ENTITY = CORPUS["ingest"], CORPUS["entity"]


def source_repo(case: dict, tmp_path: Path, monkeypatch) -> sk.FeatureStore:
    """A repo whose view v reads the case's source, its files written; the working directory is tmp_path, so a
    query writing a relative path would write there."""
    monkeypatch.chdir(tmp_path)
    store = sk.init_repo(tmp_path / "repo")
    folder = store.repo_path / "data" / "src"
    folder.mkdir(parents=True)
    for f in case["files"]:
        write_case(f, folder)
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    source = eval(case["source"], {"sk": sk})  # noqa: S307 - the corpus is this repo's own test data
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)], source=source)])
    return store


def nothing_written(case: dict, store: sk.FeatureStore, tmp_path: Path) -> None:
    assert store.offline.version("v") is None
    if "written" in case:
        assert not (tmp_path / case["written"]).exists()


@pytest.mark.parametrize("case", INGEST, ids=[c["id"] for c in INGEST])
def test_source_corpus_sdk(case, tmp_path, monkeypatch):
    store = source_repo(case, tmp_path, monkeypatch)
    with pytest.raises(getattr(errors, case["error"])) as info:
        store.ingest("v")
    assert case["message"] in str(info.value) and "\n" not in str(info.value), str(info.value)
    nothing_written(case, store, tmp_path)


@pytest.mark.parametrize("case", INGEST, ids=[c["id"] for c in INGEST])
def test_source_corpus_cli(case, tmp_path, monkeypatch):
    store = source_repo(case, tmp_path, monkeypatch)
    out = cli_error(["ingest", "v", "--repo", store.repo_path])
    assert out.startswith(f"error: {case['error']}: ") and case["message"] in out, out
    nothing_written(case, store, tmp_path)


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> sk.FeatureStore:
    store = sk.init_repo(tmp_path_factory.mktemp("entity_corpus"))
    e = sk.Entity("e", ["k"], dtype=sk.Int64)
    store.apply([e, sk.FeatureView("v", [e], [sk.Field("x", sk.Float64)])])
    store.ingest("v", pd.DataFrame({"k": [1], "event_timestamp": [datetime(2024, 1, 1, tzinfo=timezone.utc)],
                                    "x": [1.0]}))
    return store


@pytest.mark.parametrize("case", ENTITY, ids=[c["id"] for c in ENTITY])
def test_entity_corpus_sdk(case, filled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for f in case.get("files", []):
        write_case(f, tmp_path)
    entity = case["entity"].replace("{tmp}", str(tmp_path)) if isinstance(case["entity"], str) else case["entity"]
    with pytest.raises(getattr(errors, case["error"])) as info:
        job = filled.get_historical_features(entity, ["v:x"])
        job.to_parquet(case["to_parquet"]) if "to_parquet" in case else job.to_pandas()
    assert case["message"] in str(info.value) and "\n" not in str(info.value), str(info.value)
    if "written" in case:
        assert not (tmp_path / case["written"]).exists()
