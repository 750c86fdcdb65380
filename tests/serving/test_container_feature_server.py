"""The feature server's image for real (the serving Dockerfile's ``feature-server`` target), built without Docker
through the CLI (``skewless serve-image --repo``: the repo's Redis store adds the ``redis`` extra), run with podman
with a feature repo on the local Redis mounted at /repo: tokens, a read in Feast's shape, a push that a read on
the host then sees, and SIGTERM ending it cleanly. As tests/serving/test_container.py: the tools' absence fails,
it never skips."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid

import httpx
import pytest
from tests.serving.test_container import _require_tools
from tests.support.feature_server import TOKEN, driver_repo, free_port, wait_healthy
from typer.testing import CliRunner

from skewless import FeatureStore
from skewless.cli.main import app
from skewless.serving.container import build as image_build
from skewless.timeutil import now as utc_now

TAG = f"localhost/skewless-test-features:{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, redis_url):
    _require_tools()
    path = tmp_path_factory.mktemp("fs-image") / "repo"
    driver_repo(path, online=f"url: {redis_url}\n  options: {{key_prefix: fsimg{uuid.uuid4().hex[:8]}}}")
    return path


@pytest.fixture(scope="module")
def image(repo):
    t0 = time.monotonic()
    r = CliRunner().invoke(app, ["serve-image", "--tag", TAG, "--repo", str(repo)])
    assert r.exit_code == 0, r.output
    print(f"\n{r.output.strip()} [total {time.monotonic() - t0:.1f}s]")
    yield TAG
    subprocess.run([*image_build.PODMAN, "rmi", "--force", TAG], capture_output=True)


def test_the_image_runs_skewless_serve(image):
    out = image_build.podman("image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Env}} "
                             "{{index .Labels \"skewless.server\"}}", image)
    entry, env, label = out.split()
    assert entry == '["python3","-m","skewless","serve"]' and label == "feature-server"
    assert "SKEWLESS_HOST=0.0.0.0" in env and "SKEWLESS_REPO=/repo" in env
    # the repo's Redis store's client is in the image (the --repo extras), no model and no wheels left behind
    check = image_build.podman("run", "--rm", "--network", "host", *image_build.ULIMITS, "--entrypoint", "sh",
                               image, "-c", "python3 -c 'import redis, hiredis; print(1)'; ls /opt/ml/model "
                               "2>/dev/null | wc -l; ls /tmp/wheels 2>/dev/null | wc -l")
    assert check.split() == ["1", "0", "0"]


def test_the_container_serves_pushes_and_stops_on_sigterm(image, repo):
    port = free_port()
    name = f"skewless-fs-test-{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:  # the token not in argv (ps, podman logs)
        env_file.write(f"SKEWLESS_FS_TOKENS={TOKEN}\nSKEWLESS_FS_PORT={port}\n")
        env_file.flush()
        image_build.podman("run", "--detach", "--name", name, "--network", "host", *image_build.ULIMITS,
                           "--env-file", env_file.name, "--volume", f"{repo}:/repo", image)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, timeout=120, why=lambda: image_build.podman("logs", name))
        read = {"features": ["driver_stats:conv_rate", "driver_profile:city"], "entities": {"driver_id": [2]}}
        assert httpx.post(f"{base}/get-online-features", json=read).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        doc = httpx.post(f"{base}/get-online-features", json=read, headers=auth).json()
        assert doc["metadata"]["feature_names"] == ["driver_id", "conv_rate", "city"]
        assert [r["values"] for r in doc["results"]] == [[2], [0.2], ["city2"]]
        pushed = httpx.post(f"{base}/push", headers=auth, json={"push_source_name": "driver_stats", "df": {
            "driver_id": [2], "conv_rate": [0.75], "trips": [7], "event_timestamp": [utc_now().isoformat()]}})
        assert pushed.status_code == 200, pushed.text
        # written to the repo's Redis: the host's own store reads it
        assert FeatureStore(repo).get_online_features(["driver_stats:conv_rate"], [{"driver_id": 2}]) \
            .to_dict()["conv_rate"] == [0.75]
        image_build.podman("stop", "--time", "30", name)  # SIGTERM, as Kubernetes sends
        state = image_build.podman("inspect", "--format", "{{.State.ExitCode}}", name).strip()
        logs = subprocess.run([*image_build.PODMAN, "logs", name], capture_output=True, text=True)
        assert "Application shutdown complete" in logs.stdout + logs.stderr
        assert state in ("0", "143"), state  # exited on SIGTERM (uvicorn re-raises it), not killed after the timeout
    finally:
        subprocess.run([*image_build.PODMAN, "rm", "--force", name], capture_output=True)
