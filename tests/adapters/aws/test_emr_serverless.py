"""Jobs on EMR Serverless (skewless.adapters.aws.emr_serverless, `skewless submit`), with boto3 against real servers:

- the request shape and the lifecycle against the local cloud's moto server (`moto_endpoint`): what start_job_run
  sends, the staged entry point, SUCCESS, a run cancelled elsewhere (JobCancelled), Ctrl-C while waiting (the run is
  cancelled on the server), unknown applications and missing settings as typed errors;
- execution in local mode (skewless.localcloud.emr_serverless_local: moto's control plane in this process, each run's
  staged entry point executed as a subprocess with the config's engine, DuckDB here): the training set a submitted
  job writes equals the one built in-process, a materialize job fills the online store, a failing job is a JobFailed
  with the driver's error in its log tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import boto3
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from skewless import FeatureStore
from skewless.cli.main import app
from skewless.errors import ConfigError, JobCancelled, JobFailed, NotFoundError
from skewless.jobs import JobSpec, portable_config, submitter
from skewless.localcloud.emr_serverless_local import LocalEmrServerless
from skewless.adapters.aws import emr_serverless

from tests.support import e2e_pipeline

DUMMY = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
ROLE = "arn:aws:iam::123456789012:role/skewless-jobs-execution"
SERVICE = e2e_pipeline.SERVICE
runner = CliRunner(env={"COLUMNS": "250"})
ENTITIES = "data/entities.parquet"  # the loans' keys, times and labels: the entity rows of the training set


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The credit-scoring repo on local files (DuckDB, SQLite), applied and ingested."""
    path = tmp_path_factory.mktemp("emr") / "repo"
    e2e_pipeline.scaffold_with_config(path, "project: emr\n")
    from skewless.repo import load_objects

    store = FeatureStore(path)
    store.apply(load_objects(path), prune=True)
    for view in store.list_feature_views():
        store.ingest_source(view.name)
    pq.write_table(pq.read_table(path / "data" / "loan_table.parquet",
                                 columns=["loan_id", "zipcode", "event_timestamp", "loan_status"]), path / ENTITIES)
    return path


def _with_submit(repo, tmp_path, endpoint: str, app_id: str, bucket: str, **extra):
    """A copy of the repo's skewless.yaml (absolute paths) plus a submit: section for ``endpoint``."""
    doc = yaml.safe_load(portable_config(repo))
    creds = {"endpoint_url": endpoint, "access_key_id": "test", "secret_access_key": "test"}
    doc["submit"] = {"target": "emr-serverless", "application_id": app_id, "execution_role_arn": ROLE,
                     "log_uri": f"s3://{bucket}/emr-logs/", "jobs_uri": f"s3://{bucket}/jobs/",
                     "region": "us-east-1", "options": creds, "storage_options": creds, "poll_seconds": 0.05,
                     **extra}
    here = tmp_path / "submitting"
    here.mkdir()
    (here / "skewless.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return here


def _application(client) -> str:
    return client.create_application(name=f"skt-{uuid.uuid4().hex[:6]}", releaseLabel="emr-7.9.0",
                                      type="SPARK")["applicationId"]


def _training_spec(repo, destination: str, service: str = SERVICE) -> JobSpec:
    return JobSpec("training-set", portable_config(repo),
                   {"entities": str(repo / ENTITIES), "features": service,
                    "destination": destination})


# -- the request shape and lifecycle on the local cloud's moto ------------------------------------------------------
@pytest.fixture
def on_moto(repo, tmp_path, moto_endpoint):
    emr = boto3.client("emr-serverless", endpoint_url=moto_endpoint, **DUMMY)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **DUMMY)
    bucket = f"skt-emr-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    app_id = _application(emr)
    here = _with_submit(repo, tmp_path, moto_endpoint, app_id, bucket, execution_timeout_minutes=60,
                        spark_submit_parameters="--conf spark.executor.cores=4")
    return {"emr": emr, "s3": s3, "bucket": bucket, "app_id": app_id, "repo": here}


def test_start_job_run_request_shape_and_staged_entry_point(on_moto, tmp_path):
    sub = submitter(on_moto["repo"])
    spec = _training_spec(on_moto["repo"], f"s3://{on_moto['bucket']}/training-sets/credit.parquet")
    run_id = sub.start(spec, name="credit-training")
    run = on_moto["emr"].get_job_run(applicationId=on_moto["app_id"], jobRunId=run_id)["jobRun"]
    assert run["executionRole"] == ROLE and run["name"] == "credit-training"
    driver = run["jobDriver"]["sparkSubmit"]
    entry = f"s3://{on_moto['bucket']}/jobs/skewless-{emr_serverless._package_version()}/emr_entry.py"
    assert driver["entryPoint"] == entry
    assert driver["sparkSubmitParameters"] == "--conf spark.executor.cores=4"
    assert driver["entryPointArguments"][0] == "--job"
    assert JobSpec.from_json(driver["entryPointArguments"][1]) == spec
    assert run["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"] == \
        f"s3://{on_moto['bucket']}/emr-logs/"
    assert run["tags"] == {"skewless:job": "training-set"}
    assert sub.request(spec, entry)["executionTimeoutMinutes"] == 60  # sent; moto's get_job_run does not echo it
    staged = on_moto["s3"].get_object(Bucket=on_moto["bucket"], Key=entry.split("/", 3)[3])["Body"].read()
    assert staged == emr_serverless.ENTRY.read_bytes()
    # moto finishes a run at once and writes no logs: SUCCESS, without a result to read back
    states = []
    outcome = sub.wait(run_id, lambda state, details: states.append(state))
    assert (outcome.state, outcome.result, states) == ("SUCCESS", None, ["SUCCESS"])
    # the job carries the config without its submit: section (the client's settings and keys stay here)
    assert "submit" not in yaml.safe_load(json.loads(driver["entryPointArguments"][1])["config"])


def test_a_run_cancelled_elsewhere_is_a_typed_error(on_moto):
    sub = submitter(on_moto["repo"])
    run_id = sub.start(_training_spec(on_moto["repo"], "/tmp/unused.parquet"))
    on_moto["emr"].cancel_job_run(applicationId=on_moto["app_id"], jobRunId=run_id)
    with pytest.raises(JobCancelled) as info:
        sub.wait(run_id)
    assert info.value.job_run_id == run_id and info.value.state == "CANCELLED"
    assert isinstance(info.value, JobFailed)


def test_ctrl_c_while_waiting_cancels_the_run_on_the_server(on_moto):
    sub = submitter(on_moto["repo"])
    run_id = sub.start(_training_spec(on_moto["repo"], "/tmp/unused.parquet"))

    def interrupted(state, details):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        sub.wait(run_id, interrupted)
    run = on_moto["emr"].get_job_run(applicationId=on_moto["app_id"], jobRunId=run_id)["jobRun"]
    assert run["state"] == "CANCELLED"


def test_unknown_application_and_missing_settings_are_typed_errors(on_moto, tmp_path):
    doc = yaml.safe_load((on_moto["repo"] / "skewless.yaml").read_text())
    doc["submit"]["application_id"] = "00nosuchapp00"
    (on_moto["repo"] / "skewless.yaml").write_text(yaml.safe_dump(doc))
    sub = submitter(on_moto["repo"])
    with pytest.raises(NotFoundError, match="00nosuchapp00"):
        sub.state("00nosuchjob00")
    del doc["submit"]["execution_role_arn"]
    (on_moto["repo"] / "skewless.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="submit lacks execution_role_arn"):
        submitter(on_moto["repo"])
    doc["submit"]["target"] = "emr-on-eks"
    (on_moto["repo"] / "skewless.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="unknown submit target 'emr-on-eks'"):
        submitter(on_moto["repo"])
    del doc["submit"]
    (on_moto["repo"] / "skewless.yaml").write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["submit", "materialize", "2030-01-01", "--repo", str(on_moto["repo"])])
    assert res.exit_code == 1 and "has no submit: section" in res.output


# -- execution in local mode ----------------------------------------------------------------------------------------
@pytest.fixture
def local_emr(repo, tmp_path):
    cloud = LocalEmrServerless().start().serve()
    try:
        bucket = f"skt-emr-{uuid.uuid4().hex[:8]}"
        cloud.client("s3").create_bucket(Bucket=bucket)
        app_id = _application(cloud.client("emr-serverless"))
        yield {"cloud": cloud, "app_id": app_id, "bucket": bucket,
               "repo": _with_submit(repo, tmp_path, cloud.endpoint, app_id, bucket)}
    finally:
        cloud.stop()


def test_submitted_training_set_equals_the_in_process_one(local_emr, repo, tmp_path):
    out = tmp_path / "submitted.parquet"
    res = runner.invoke(app, ["submit", "training-set", "--entities", str(repo / ENTITIES),
                              "--service", SERVICE, "--to", str(out), "--repo", str(local_emr["repo"]), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["state"] == "SUCCESS" and doc["result"]["destination"] == str(out)
    assert doc["result"]["engine"] == "duckdb"
    assert "RUNNING" in res.stderr and "SUCCESS" in res.stderr  # progress, state by state
    assert local_emr["cloud"].executed == [doc["job_run_id"]]
    expected = FeatureStore(repo).get_historical_features(str(repo / ENTITIES), SERVICE)
    expected.to_parquet(tmp_path / "in-process.parquet")  # the same writer, here: the same file contents
    want, got = pq.read_table(tmp_path / "in-process.parquet"), pq.read_table(out)
    assert got.num_rows == pq.read_metadata(repo / ENTITIES).num_rows
    assert got.schema.equals(want.schema) and got.equals(want)
    assert doc["result"]["snapshot"] == json.loads(json.dumps(expected.snapshot))


def test_submitted_materialize_fills_the_online_store(local_emr, repo):
    res = runner.invoke(app, ["submit", "materialize", "2030-01-01T00:00:00Z", "--start", "2000-01-01T00:00:00Z",
                              "--repo", str(local_emr["repo"]), "--json", "--logs"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = {v["view"]: v["rows"] for v in doc["result"]["views"]}
    assert rows and all(n > 0 for n in rows.values())
    assert "SKEWLESS_JOB_RESULT" in doc["driver_stdout"]  # --logs: the driver's stdout, read from the log URI
    online = FeatureStore(repo).get_online_features(SERVICE, [{"loan_id": 10000, "zipcode": 76104}]).values
    assert any(v is not None for k, v in online.items() if k not in ("loan_id", "zipcode"))


def test_a_failing_job_is_a_job_failed_with_the_driver_error(local_emr, repo):
    sub = submitter(local_emr["repo"])
    run_id = sub.start(_training_spec(repo, "/tmp/never.parquet", service="no_such_service"))
    with pytest.raises(JobFailed) as info:
        sub.wait(run_id)
    assert not isinstance(info.value, JobCancelled)
    assert info.value.state == "FAILED" and "ExitCode: 1" in info.value.details
    assert "SKEWLESS_JOB_ERROR" in info.value.log_tail and "no_such_service" in info.value.log_tail
    res = runner.invoke(app, ["submit", "training-set", "--entities", str(repo / ENTITIES),
                              "--service", "no_such_service", "--to", "/tmp/never.parquet",
                              "--repo", str(local_emr["repo"])])
    assert res.exit_code == 1 and "error: JobFailed: job run" in res.output and "ended FAILED" in res.output


def test_ctrl_c_on_skewless_submit_cancels_the_running_job(local_emr, repo, tmp_path):
    """A real Ctrl-C (SIGINT) to a `skewless submit` process while its run is RUNNING: the run is cancelled on the
    server, the job's process is stopped there, nothing is written, and the command exits 130. The job reads its
    entity rows from a FIFO nobody writes to, so it cannot finish before the interrupt."""
    fifo = tmp_path / "entities.parquet"
    os.mkfifo(fifo)
    out = tmp_path / "never.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "skewless", "submit", "training-set", "--entities", str(fifo),
                             "--service", SERVICE, "--to", str(out), "--repo", str(local_emr["repo"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    emr = local_emr["cloud"].client("emr-serverless")
    try:
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline and not runs:
            try:
                runs = emr.list_job_runs(applicationId=local_emr["app_id"], states=["RUNNING"])["jobRuns"]
            except emr.exceptions.ResourceNotFoundException:  # moto: no run started on the application yet
                pass
            time.sleep(0.1)
        assert runs, "the run never reached RUNNING"
        time.sleep(1.0)  # the command is polling
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"cancelled job run {runs[0]['id']}" in err and "RUNNING" in err
    run = emr.get_job_run(applicationId=local_emr["app_id"], jobRunId=runs[0]["id"])["jobRun"]
    assert run["state"] == "CANCELLED"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and local_emr["cloud"].running():
        time.sleep(0.1)
    assert not local_emr["cloud"].running()  # the job's process was stopped on the "cluster"
    assert not out.exists()


def test_a_submitted_training_set_reads_entities_from_s3_and_writes_the_set_to_s3(repo, tmp_path):
    """Entity rows under entities/ and the training set under training-sets/ of the bucket (the prefixes the stack's
    job runtime role may read and write), with the credentials only in the job's environment: the config carries
    `sources.s3` without keys."""
    cloud = LocalEmrServerless(env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}).start().serve()
    try:
        s3 = cloud.client("s3")
        bucket = f"skt-emr-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(repo / ENTITIES), bucket, "entities/loans.parquet")
        here = _with_submit(repo, tmp_path, cloud.endpoint, _application(cloud.client("emr-serverless")), bucket)
        doc = yaml.safe_load((here / "skewless.yaml").read_text())
        doc["sources"] = {"s3": {"endpoint_url": cloud.endpoint, "region": "us-east-1"}}
        (here / "skewless.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        url = f"s3://{bucket}/training-sets/credit.parquet"
        res = runner.invoke(app, ["submit", "training-set", "--entities", f"s3://{bucket}/entities/loans.parquet",
                                  "--service", SERVICE, "--to", url, "--repo", str(here), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["result"]["destination"] == url
        run = cloud.client("emr-serverless").get_job_run(applicationId=doc["submit"]["application_id"],
                                                         jobRunId=json.loads(res.stdout)["job_run_id"])["jobRun"]
        carried = yaml.safe_load(json.loads(run["jobDriver"]["sparkSubmit"]["entryPointArguments"][1])["config"])
        assert carried["sources"] == {"s3": {"endpoint_url": cloud.endpoint, "region": "us-east-1"}}  # no keys
        assert "submit" not in carried
        s3.download_file(bucket, "training-sets/credit.parquet", str(tmp_path / "from-s3.parquet"))
        # the object-store writer keeps the set's Arrow schema (NOT NULL keys included): equal to to_arrow() here
        want = FeatureStore(repo).get_historical_features(str(repo / ENTITIES), SERVICE).to_arrow()
        got = pq.read_table(tmp_path / "from-s3.parquet")
        assert got.schema.equals(want.schema) and got.equals(want)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="training-sets/")["Contents"]}
        assert keys == {"training-sets/credit.parquet", "training-sets/credit.parquet.snapshot.json"}
    finally:
        cloud.stop()
