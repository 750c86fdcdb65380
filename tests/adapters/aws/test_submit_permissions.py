"""`skewless submit` checks the submitter's permission before anything reaches the cluster (issue 19): a training
set needs ``read_offline`` on its views (or its service), a materialize ``ingest`` on each view it writes. Against
the local cloud's moto server with boto3: a denial exits 1, is audited, and nothing is staged or started."""

from __future__ import annotations

import uuid

import boto3
import yaml
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.jobs import portable_config
from tests.core.test_pii import objects, pii_repo

DUMMY = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
ROLE = "arn:aws:iam::123456789012:role/skewless-jobs-execution"


def test_submit_is_denied_before_the_cluster_sees_it(tmp_path, moto_endpoint):
    repo = tmp_path / "repo"
    store = pii_repo(repo)
    store.apply([*objects(), sk.Principal("analyst"), sk.Principal("intruder"),
                 sk.Role("offline", ["read_offline"]),
                 sk.Grant("analysts", role="offline", principals=["analyst"], resources=["view:customer_*"])],
                prune=True)
    emr = boto3.client("emr-serverless", endpoint_url=moto_endpoint, **DUMMY)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **DUMMY)
    bucket = f"skt-perm-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    app_id = emr.create_application(name=f"skt-{uuid.uuid4().hex[:6]}", releaseLabel="emr-7.9.0",
                                    type="SPARK")["applicationId"]
    doc = yaml.safe_load(portable_config(repo))
    creds = {"endpoint_url": moto_endpoint, "access_key_id": "test", "secret_access_key": "test"}
    doc["submit"] = {"target": "emr-serverless", "application_id": app_id, "execution_role_arn": ROLE,
                     "log_uri": f"s3://{bucket}/emr-logs/", "jobs_uri": f"s3://{bucket}/jobs/", "region": "us-east-1",
                     "options": creds, "storage_options": creds, "poll_seconds": 0.05}
    here = tmp_path / "submitting"
    here.mkdir()
    (here / "skewless.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    training = ["submit", "training-set", "--entities", str(repo / "entities.parquet"), "--to",
                f"s3://{bucket}/ts.parquet", "--service", "profile_service", "--no-wait", "-r", str(here)]
    materialize = ["submit", "materialize", "2025-02-01T00:00:00", "--no-wait", "-r", str(here)]
    runner = CliRunner()
    for args in (training, materialize):
        r = runner.invoke(app, args, env={"SKEWLESS_PRINCIPAL": "intruder"})
        assert r.exit_code == 1 and "PermissionDenied" in r.output, r.output
    r = runner.invoke(app, materialize, env={"SKEWLESS_PRINCIPAL": "analyst"})  # read_offline, not ingest
    assert r.exit_code == 1 and "may not ingest on view:customer_profile" in r.output, r.output
    # nothing reached the cluster: a start stages the job's entry point under jobs_uri first
    assert s3.list_objects_v2(Bucket=bucket, Prefix="jobs/")["KeyCount"] == 0
    denied = [(x.principal, x.action, x.resource) for x in store.audit_log.records(outcome="denied")]
    assert denied == [("intruder", "read_offline", "view:customer_profile"),
                      ("intruder", "ingest", "view:customer_profile"),
                      ("analyst", "ingest", "view:customer_profile")]
    r = runner.invoke(app, training, env={"SKEWLESS_PRINCIPAL": "analyst"})
    assert r.exit_code == 0, r.output
    run = emr.get_job_run(applicationId=app_id, jobRunId=r.output.strip())["jobRun"]
    assert run["tags"] == {"skewless:job": "training-set"}
    assert s3.list_objects_v2(Bucket=bucket, Prefix="jobs/")["KeyCount"] == 1
