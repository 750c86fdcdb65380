"""skewless.jobs: the job spec a submitter ships, the config as a job carries it, and the entry point run in this
process with the config's engine (DuckDB). Submission itself: tests/adapters/aws/test_emr_serverless.py."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from skewless import FeatureStore
from skewless.errors import ValidationError
from skewless.jobs import RESULT_MARK, JobSpec, main, portable_config, result_of
from skewless.repo import load_objects
from skewless.scaffold import scaffold


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = scaffold(tmp_path_factory.mktemp("jobs") / "repo")
    store = FeatureStore(path)
    store.apply(load_objects(path), prune=True)
    for view in store.list_feature_views():
        store.ingest_source(view.name)
    pq.write_table(pq.read_table(path / "data" / "loan_table.parquet",
                                 columns=["loan_id", "zipcode", "event_timestamp", "loan_status"]),
                   path / "data" / "entities.parquet")
    return path


@pytest.mark.parametrize("kind, args, message", [
    ("train", {}, "unknown job kind 'train'"),
    ("training-set", {"entities": "e.parquet", "features": "svc"}, "a training-set job needs destination"),
    ("materialize", {"end": "2024-01-01"}, "a materialize job needs start"),
    ("materialize-incremental", {}, "a materialize-incremental job needs end"),
])
def test_a_job_spec_is_checked_when_made(kind, args, message):
    with pytest.raises(ValidationError, match=message):
        JobSpec(kind, "project: p\n", args)


def test_a_job_spec_round_trips_and_bad_json_is_a_validation_error():
    spec = JobSpec("materialize", "project: p\n", {"start": "2024-01-01", "end": "2024-02-01", "views": ["a"]})
    assert JobSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValidationError, match="not JSON"):
        JobSpec.from_json("{kind")
    with pytest.raises(ValidationError, match="an object with kind, config and args"):
        JobSpec.from_json('{"kind": "materialize", "extra": 1}')


def test_the_config_a_job_carries_keeps_references_and_makes_local_paths_absolute(tmp_path):
    (tmp_path / "skewless.yaml").write_text(
        "project: p\nregistry: data/registry\noffline: {url: data/offline, engine: duckdb}\n"
        "online: {url: 'redis://:${SKEWLESS_REDIS_PASSWORD}@h:6379/0'}\n"
        "submit: {target: emr-serverless, options: {secret_access_key: not-for-the-job}}\n")
    doc = yaml.safe_load(portable_config(tmp_path))
    assert doc["registry"] == str(tmp_path.resolve() / "data" / "registry")
    assert doc["offline"] == {"url": str(tmp_path.resolve() / "data" / "offline"), "engine": "duckdb"}
    assert doc["online"]["url"] == "redis://:${SKEWLESS_REDIS_PASSWORD}@h:6379/0"  # unexpanded
    assert "submit" not in doc
    (tmp_path / "skewless.yaml").write_text("project: p\n")  # the defaults, made absolute too
    doc = yaml.safe_load(portable_config(tmp_path))
    assert doc["online"] == f"sqlite:///{tmp_path.resolve()}/data/online.db"
    assert doc["offline"] == str(tmp_path.resolve() / "data" / "offline")


def test_the_entry_point_runs_a_training_set_with_the_configs_engine(repo, tmp_path, capsys):
    out = tmp_path / "ts.parquet"
    spec = JobSpec("training-set", portable_config(repo),
                   {"entities": str(repo / "data" / "entities.parquet"), "features": "credit_model_v1",
                    "destination": str(out)})
    assert main(["--job", spec.to_json()]) == 0
    result = result_of(capsys.readouterr().out)
    assert result["engine"] == "duckdb" and result["destination"] == str(out)
    want = FeatureStore(repo).get_historical_features(str(repo / "data" / "entities.parquet"), "credit_model_v1")
    want.to_parquet(tmp_path / "here.parquet")
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "here.parquet"))
    assert result["snapshot"] == json.loads(json.dumps(want.snapshot))


def test_the_entry_point_reports_a_skewless_error_as_one_line_and_exit_1(repo, tmp_path, capsys):
    spec_file = tmp_path / "job.json"
    spec_file.write_text(JobSpec("materialize-incremental", portable_config(repo),
                                 {"end": "2030-01-01", "views": ["no_such_view"]}).to_json())
    assert main(["--job-file", str(spec_file)]) == 1
    captured = capsys.readouterr()
    assert RESULT_MARK not in captured.out
    assert captured.err.startswith("SKEWLESS_JOB_ERROR ") and "no_such_view" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_result_of_takes_the_last_result_line():
    log = f"spark noise\n{RESULT_MARK}{{\"n\": 1}}\nmore\n{RESULT_MARK}{{\"n\": 2}}\n"
    assert result_of(log) == {"n": 2}
    assert result_of("nothing here") is None and result_of(None) is None


def test_a_training_set_job_carries_its_split(repo, tmp_path, capsys):
    out = tmp_path / "ts.parquet"
    split = {"time": {"test": "2021-01-01"}, "column": "part"}
    spec = JobSpec("training-set", portable_config(repo),
                   {"entities": str(repo / "data" / "entities.parquet"), "features": "credit_model_v1",
                    "destination": str(out), "split": split})
    assert main(["--job", spec.to_json()]) == 0
    want = FeatureStore(repo).get_historical_features(str(repo / "data" / "entities.parquet"), "credit_model_v1",
                                                      split=split).to_arrow()
    got = pq.read_table(out)
    assert got.equals(want) and got.column_names[-1] == "part"
    assert set(got.column("part").to_pylist()) == {"train", "test"}  # loans from 2020-08 to 2021-08
