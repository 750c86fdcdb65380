"""The serving image for real, without Docker: built with podman on the debootstrap base (cached across runs),
pushed to the local OCI registry with ECR-style token login, run with podman, invoked, stopped (SIGTERM) with the
prediction log flushed into the mounted repo's offline store.

podman/buildah/runc/debootstrap/docker-registry come from Debian (``./run test`` installs them as root). Where they
are missing these tests fail, loudly, rather than skip: CI runs as root with apt, so a skip would hide a broken
image build.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time

import httpx
import pytest
from typer.testing import CliRunner

from skewless.cli.main import app
from skewless.errors import StoreUnavailable
from skewless.localcloud import OciRegistry
from skewless.serving import read_log
from skewless.serving.container import build as image_build
from skewless.serving.deploy.podman import PodmanRuntime
from tests.serving.test_serving import free_port, in_process, trained_credit

TAG = f"localhost/skewless-test-credit:{os.getpid()}"
TOOLS = ("podman", "buildah", "runc", "debootstrap", "docker-registry", "htpasswd")


def _require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"container tests need {missing} (Debian packages podman buildah runc debootstrap docker-registry "
                    f"apache2-utils; `./run test` installs them when run as root)")


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    _require_tools()
    return trained_credit(tmp_path_factory.mktemp("container") / "repo", sample=12, random_state=5)


@pytest.fixture(scope="module")
def image(credit):
    """The production version baked in, built through the CLI (`skewless model build --model`)."""
    t0 = time.monotonic()
    r = CliRunner().invoke(app, ["model", "build", "--tag", TAG, "--model", "credit", "--stage", "production",
                                 "--repo", str(credit["repo"])])
    assert r.exit_code == 0, r.output
    print(f"\n{r.output.strip()} [total {time.monotonic() - t0:.1f}s]")
    yield TAG
    subprocess.run([*image_build.PODMAN, "rmi", "--force", TAG], capture_output=True)


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory):
    _require_tools()
    reg = OciRegistry(tmp_path_factory.mktemp("registry-state"), port=free_port())
    assert reg.start()
    yield reg
    reg.stop()
    assert reg.status() == "stopped"


def test_image_contract_and_baked_model(image):
    cfg = image_build.podman("image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} "
                             "{{index .Labels \"skewless.model.version\"}}", image)
    assert cfg.split() == ['["python3","-m","skewless.serving"]', '["serve"]', "1"]  # `<image> serve` = SageMaker's
    # the server alone listens on loopback; in the image, on every interface (the platforms reach it from outside)
    assert "SKEWLESS_HOST=0.0.0.0" in image_build.podman("image", "inspect", "--format", "{{json .Config.Env}}", image)
    out = image_build.podman("run", "--rm", "--network", "host", *image_build.ULIMITS, "--entrypoint", "sh", image,
                             "-c", "ls /opt/ml/model; ls /tmp/wheels 2>/dev/null | wc -l")
    *files, wheels_left = out.split()
    assert {"skewless-model.json", "registry.json", "requirements.txt"} <= set(files)
    assert wheels_left == "0"  # the wheels were bind-mounted for the install, not left in a layer


def test_push_with_token_login_and_wrong_token_refused(image, oci_registry):
    user, token = oci_registry.credentials()
    raw = oci_registry.get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(raw["authorizationToken"]).decode() == f"AWS:{token}"  # ECR's response shape
    assert raw["proxyEndpoint"] == f"http://{oci_registry.endpoint}"
    with pytest.raises(StoreUnavailable, match="(?i)unauthorized|401|invalid"):
        image_build.push_image(image, f"{oci_registry.endpoint}/credit:1", user=user, password="wrong-token")
    r = CliRunner().invoke(app, ["model", "push", image, f"{oci_registry.endpoint}/credit:1",
                                 "--local-state", str(oci_registry.state)])
    assert r.exit_code == 0, r.output
    print(f"\n{r.output.strip()}")
    url = f"http://{oci_registry.endpoint}/v2/credit/tags/list"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("AWS", "nope")).status_code == 401
    assert httpx.get(url, auth=(user, token)).json()["tags"] == ["1"]


def test_container_serves_and_flushes_the_log_on_stop(image, credit):
    store, rows = credit["store"], credit["loans"]
    ids = [int(i) for i in rows.loan_id]
    before = len(read_log(store, "credit"))
    rt = PodmanRuntime(image=image)
    port = free_port()
    t0 = time.monotonic()
    # The artifact is mounted over the baked one (as SageMaker/EAS mount a separately downloaded model); the repo
    # (SQLite online store, local offline store receiving the log) is mounted at its own path.
    handle = rt.start(credit["artifact"].path, {"SKEWLESS_REPO": str(credit["repo"]),
                                                "SKEWLESS_LOG_FLUSH_SECONDS": "3600"}, port)
    print(f"\ncontainer answered /ping after {time.monotonic() - t0:.1f}s")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/ping").status_code == 200
            r = c.post("/invocations", json={"instances": [{"loan_id": i} for i in ids]})
            assert r.status_code == 200, r.text
            served = [p["proba_1"] for p in r.json()["predictions"]]
            assert c.post("/invocations", json={"loan": 1}).status_code == 422  # lacks the key
    finally:
        rt.stop(handle)  # SIGTERM: the log is flushed by the shutdown, not by the (hour-long) flush interval
    logs = rt.logs(handle)
    assert '"prediction_log_complete": true' in logs, logs[-2000:]
    log = read_log(store, "credit").to_pandas()
    assert len(log) == before + len(ids)
    mine = log[log.loan_id.isin(ids)].drop_duplicates("loan_id", keep="last").set_index("loan_id").loc[ids]
    # the container's predictions are the training-set path's at the time it read the features
    assert served == in_process(credit, rows, mine.event_timestamp.max())
    assert mine.output__proba_1.tolist() == served


def test_a_server_that_cannot_start_raises_with_the_container_log(image, credit, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(StoreUnavailable, match="exited while starting") as exc:
        PodmanRuntime(image=image, start_timeout=60).start(empty, {"SKEWLESS_REPO": str(credit["repo"])}, free_port())
    assert "skewless-model.json" in str(exc.value)  # the server's own reason, from the container's log
