"""Deploy targets end to end on real parts: the credit-scoring model (registered twice) deployed to the local
target, to SageMaker (moto's control plane + ``skewless.localcloud.sagemaker_runtime``) and to PAI-EAS
(``skewless.localcloud.eas_emulator``), each variant a real ``python -m skewless.serving serve`` process on the
SQLite online store. Invoked with loan ids only, predictions equal the training-set path; the prediction log
holds the rows; traffic moves between versions by weight; rollback leaves version 1 alone."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Callable

import boto3
import botocore.exceptions
import httpx
import pytest
from tests.serving.test_serving import credit, free_port, in_process  # noqa: F401 - `credit` is a fixture, taken by name below

from skewless.demo import _model
from skewless.errors import StoreUnavailable
from skewless.localcloud.eas_emulator import eas_service
from skewless.localcloud.sagemaker_runtime import sagemaker_service
from skewless.serving import ModelRegistry, package_model, read_log
from skewless.serving.deploy import get_target
from skewless.serving.deploy.runtime import ProcessRuntime
from skewless.timeutil import now as utc_now


@pytest.fixture(scope="module")
def models(request):
    """The credit fixture's model as version 1 and a differently fitted one as version 2."""
    c = request.getfixturevalue("credit")
    train = c["job"].to_pandas()
    half = train.sample(frac=0.5, random_state=7)
    m2 = _model().set_params(clf__max_iter=20).fit(half[c["features"]], half["loan_status"])
    art = package_model(m2, name="credit", store=c["store"], feature_service=c["artifact"].manifest.feature_service,
                        training_set=c["job"], key_lookups={"zipcode": "loan_zipcode:zipcode"})
    assert ModelRegistry(c["store"]).register(art, message="second").version == 2
    return c


@pytest.fixture(scope="module")
def local_target(models, tmp_path_factory):
    target = get_target("local", models["store"], state_dir=tmp_path_factory.mktemp("local-deploy"))
    yield target
    for ep in target.endpoints():
        target.delete(ep.name)


IMAGE = "localhost/skewless-serving:test"  # recorded only by the process runtime
STOP_SECONDS = 90  # the emulators stop their model servers on SIGTERM, each with a graceful shutdown


@contextlib.contextmanager
def sagemaker_emulation(store, moto_endpoint: str, state: Path, *, image: str = IMAGE, runtime: str = "process",
                        registry_auth: Path | None = None):
    """The SageMaker target against moto + the local SageMaker emulator running each variant with ``runtime``."""
    svc = sagemaker_service(free_port(), state, moto_endpoint, runtime, registry_auth)
    svc.start(state / "run")
    bucket = f"skewless-deploy-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    try:
        yield get_target("sagemaker", store, bucket=bucket, image=image,
                         role_arn="arn:aws:iam::123456789012:role/skewless-sagemaker",
                         endpoint_url=f"http://{svc.endpoint}", s3_endpoint_url=moto_endpoint, poll_seconds=0.2)
    finally:
        svc.stop(state / "run", timeout=STOP_SECONDS)


@contextlib.contextmanager
def eas_emulation(store, state: Path, *, image: str = IMAGE, runtime: str = "process",
                  registry_auth: Path | None = None):
    """The PAI-EAS target against the local EAS emulator running each service with ``runtime``."""
    svc = eas_service(free_port(), state, runtime, registry_auth)
    svc.start(state / "run")
    try:
        yield get_target("eas", store, image=image, endpoint=svc.endpoint, protocol="http", poll_seconds=0.2)
    finally:
        svc.stop(state / "run", timeout=STOP_SECONDS)


@pytest.fixture(scope="module")
def sagemaker_target(models, moto_endpoint, tmp_path_factory):
    with sagemaker_emulation(models["store"], moto_endpoint, tmp_path_factory.mktemp("sagemaker-emu")) as target:
        yield target


@pytest.fixture(scope="module")
def eas_target(models, tmp_path_factory):
    with eas_emulation(models["store"], tmp_path_factory.mktemp("eas-emu")) as target:
        yield target


def _wait_log(store, rows: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        log = read_log(store, "credit")
        if len(log) >= rows or time.monotonic() > deadline:
            return log.to_pandas()
        time.sleep(0.3)


def _versions(target, endpoint: str, ids: list[int], calls: int = 24) -> set[int]:
    return {target.invoke(endpoint, [{"loan_id": ids[n % len(ids)]}])["version"] for n in range(calls)}


def deploy_invoke_log_weights_and_rollback(target, models, endpoint: str,
                                           servers: Callable[[], int] | None = None) -> None:
    """The issue's path on one target: deploy v1, invoke with loan ids only, predictions equal the training-set path
    (the skew test), the prediction log holds those rows, canary then all traffic to v2, roll back, delete.
    ``servers``: how many model servers run now (checked after the canary and after the delete)."""
    store, loans = models["store"], models["loans"]
    ids = [int(i) for i in loans.loan_id][:12]

    ep = target.deploy("credit", 1, endpoint)
    assert ep.status == "InService" and ep.weights() == {"v1": 1.0}
    assert endpoint in [e.name for e in target.endpoints()]

    before = len(read_log(store, "credit"))
    answer = target.invoke(endpoint, [{"loan_id": i} for i in ids])
    assert answer["version"] == 1 and answer["variant"] == "v1"
    served = [p["proba_1"] for p in answer["predictions"]]
    assert served == in_process(models, loans.set_index("loan_id").loc[ids].reset_index(), utc_now())
    log = _wait_log(store, before + len(ids)).iloc[before:]
    assert sorted(log.loan_id) == sorted(ids) and set(log.model_version) == {1}
    assert sorted(log.output__proba_1) == sorted(served)

    # canary: version 2 takes half, both answer; then all traffic to v2 (v1 kept at 0 for an instant rollback)
    ep = target.deploy("credit", 2, endpoint, weight=0.5)
    assert ep.weights() == pytest.approx({"v1": 0.5, "v2": 0.5})
    if servers:
        assert servers() == 2
    assert _versions(target, endpoint, ids) == {1, 2}
    assert target.invoke(endpoint, [{"loan_id": ids[0]}], variant="v2")["version"] == 2
    ep = target.set_weights(endpoint, {"v2": 1.0})
    assert ep.weights() == pytest.approx({"v1": 0.0, "v2": 1.0})
    assert _versions(target, endpoint, ids, 10) == {2}

    ep = target.rollback(endpoint)
    assert ep.weights() == pytest.approx({"v1": 1.0})
    assert _versions(target, endpoint, ids, 16) == {1}
    target.delete(endpoint)
    assert endpoint not in [e.name for e in target.endpoints()]
    if servers:
        assert servers() == 0


@pytest.mark.parametrize("kind", ["local", "sagemaker", "eas"])
def test_deploy_invoke_log_weights_and_rollback(kind, models, request):
    target = request.getfixturevalue(f"{kind}_target")
    deploy_invoke_log_weights_and_rollback(target, models, f"credit{kind}{uuid.uuid4().hex[:6]}")


def test_eas_gateway_checks_the_token(eas_target, models):
    endpoint = f"crediteas{uuid.uuid4().hex[:6]}"
    eas_target.deploy("credit", 1, endpoint)
    try:
        url = f"{eas_target.invoke_url}/api/predict/{endpoint}"
        body = {"loan_id": int(models["loans"].loan_id.iloc[0])}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": "wrong"}).status_code == 401
        ok = httpx.post(url, json=body, headers={"Authorization": eas_target.token(endpoint)})
        assert ok.status_code == 200 and ok.json()["version"] == 1
        # deploying a version that is already a member updates its service in place (UpdateService)
        eas_target.deploy("credit", 1, endpoint)
        assert eas_target._describe_service(f"{endpoint}_v1").current_version == 2
        assert eas_target.invoke(endpoint, [{"loan_id": body["loan_id"]}])["version"] == 1
        # the control plane outside the emulated subset fails loudly, naming the request
        bad = httpx.get(f"{eas_target.invoke_url}/api/v2/resources")
        assert bad.status_code == 501 and "GET /api/v2/resources" in bad.json()["Message"]
    finally:
        eas_target.delete(endpoint)


def test_emulators_pass_content_type_and_accept_on(sagemaker_target, eas_target, models):
    """A CSV body answered as JSON Lines through SageMaker's InvokeEndpoint (boto3) and as CSV through the EAS
    gateway: both emulators hand the container the caller's Content-Type and Accept, and its answer's type back."""
    ids = [int(i) for i in models["loans"].loan_id][:3]
    csv_body = "".join(f"{i}\n" for i in ids).encode()
    endpoint = f"creditfmt{uuid.uuid4().hex[:6]}"
    sagemaker_target.deploy("credit", 1, endpoint)
    eas_target.deploy("credit", 1, endpoint)
    try:
        r = sagemaker_target.rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv",
                                                Accept="application/jsonlines", Body=csv_body)
        assert r["ContentType"].startswith("application/jsonlines")
        lines = r["Body"].read().decode().splitlines()
        assert len(lines) == 3 and all(set(json.loads(line)) == {"proba_0", "proba_1"} for line in lines)
        a = httpx.post(f"{eas_target.invoke_url}/api/predict/{endpoint}", content=csv_body, timeout=30,
                       headers={"Authorization": eas_target.token(endpoint), "content-type": "text/csv",
                                "accept": "text/csv"})
        assert a.status_code == 200 and a.headers["content-type"].startswith("text/csv"), a.text
        rows = [line.split(",") for line in a.text.splitlines()]
        assert [float(p1) for _, p1 in rows] == pytest.approx([json.loads(line)["proba_1"] for line in lines])
    finally:
        sagemaker_target.delete(endpoint)
        eas_target.delete(endpoint)


def test_sagemaker_emulator_rejects_operations_outside_its_subset(sagemaker_target):
    with pytest.raises(botocore.exceptions.ClientError, match="ListModels"):
        sagemaker_target.sm.list_models()


def test_cli_deploy_invoke_weights_rollback(models, tmp_path):
    """`skewless model deploy|invoke|endpoints|weights|rollback` on the local target (same code as the SDK)."""
    from typer.testing import CliRunner

    from skewless.cli.main import app

    runner = CliRunner(env={"COLUMNS": "250"})
    common = ["--target", "local", "-o", f"state_dir={tmp_path / 'state'}", "--repo", str(models["repo"])]

    def cli(*args):
        r = runner.invoke(app, ["model", *map(str, args), *common], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    loan = int(models["loans"].loan_id.iloc[0])
    try:
        assert "v1=100%" in cli("deploy", "credit", 1, "--endpoint", "clicredit")
        assert "v1=50%, v2=50%" in cli("deploy", "credit", 2, "--endpoint", "clicredit", "--weight", 0.5)
        assert "v1=0%, v2=100%" in cli("weights", "clicredit", "v2=1")
        answer = json.loads(cli("invoke", "clicredit", json.dumps({"loan_id": loan})))
        assert answer["version"] == 2 and answer["variant"] == "v2" and len(answer["predictions"]) == 1
        assert "clicredit" in cli("endpoints")
        (ep,) = [e for e in json.loads(cli("endpoints", "--json")) if e["name"] == "clicredit"]
        assert sorted((v["name"], v["weight"]) for v in ep["variants"]) == [("v1", 0.0), ("v2", 1.0)]
        assert "v1=100%" in cli("rollback", "clicredit")
        assert json.loads(cli("invoke", "clicredit", json.dumps([{"loan_id": loan}])))["version"] == 1
    finally:
        get_target("local", models["store"], state_dir=tmp_path / "state").delete("clicredit")


def test_process_runtime_start_failure_carries_the_log_tail(models, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(StoreUnavailable, match="is not a model artifact"):
        ProcessRuntime(state_dir=tmp_path / "run").start(empty, {"SKEWLESS_REPO": str(models["repo"])}, free_port())


def test_failed_updates_keep_serving_the_previous_version(sagemaker_target, eas_target, models):
    """SageMaker: an UpdateEndpoint whose model cannot start leaves the old config serving and reports why.
    EAS: a service whose server exits is Failed with the log tail; the deploy raises."""
    loan = [{"loan_id": int(models["loans"].loan_id.iloc[0])}]
    endpoint = f"creditfail{uuid.uuid4().hex[:6]}"
    sm = sagemaker_target.sm
    sagemaker_target.deploy("credit", 1, endpoint)
    try:
        missing = f"s3://{sagemaker_target.bucket}/missing.tar.gz"
        sm.create_model(ModelName=f"{endpoint}-broken", ExecutionRoleArn=sagemaker_target.role_arn,
                        PrimaryContainer={"Image": "x", "ModelDataUrl": missing})
        sm.create_endpoint_config(EndpointConfigName=f"{endpoint}-broken", ProductionVariants=[
            {"VariantName": "v9", "ModelName": f"{endpoint}-broken", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-broken")
        with pytest.raises(StoreUnavailable, match="update failed"):
            sagemaker_target._wait(endpoint)
        assert sagemaker_target.describe(endpoint).weights() == {"v1": 1.0}
        assert sagemaker_target.invoke(endpoint, loan)["version"] == 1
    finally:
        sagemaker_target.delete(endpoint)

    with pytest.raises(StoreUnavailable, match="failed"):
        eas_target.deploy("credit", 99, endpoint)  # no version 99: the server exits while starting
    assert eas_target.describe(endpoint).status == "Failed"
    eas_target.delete(endpoint)
