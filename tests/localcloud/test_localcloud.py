"""The local cloud's process management: idempotent start, health, stop by PID, status, generated config."""

import os
import signal
import socket

import pytest
import yaml
from typer.testing import CliRunner

from skewless import config as config_mod
from skewless.cli.main import app
from skewless.errors import StoreUnavailable
from skewless.localcloud import LocalCloud, redis_service
from skewless.process import pid_alive


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_service_lifecycle_is_idempotent_and_stops_by_pid(tmp_path):
    svc = redis_service("redis-life", free_port(), state=tmp_path)
    assert svc.status(tmp_path) == "stopped"
    assert svc.start(tmp_path) is True
    pid = svc.pid(tmp_path)
    assert pid and pid_alive(pid) and svc.status(tmp_path) == f"running (pid {pid})"
    assert svc.start(tmp_path) is False and svc.pid(tmp_path) == pid  # reused, not started twice
    assert svc.stop(tmp_path) is True
    assert not pid_alive(pid) and svc.status(tmp_path) == "stopped" and not svc.pid_file(tmp_path).exists()
    assert svc.stop(tmp_path) is False  # nothing left to stop


def test_stale_pid_file_is_cleaned_and_service_restarts(tmp_path):
    svc = redis_service("redis-stale", free_port(), state=tmp_path)
    svc.start(tmp_path)
    pid = svc.pid(tmp_path)
    os.killpg(pid, signal.SIGKILL)  # crashes behind our back
    os.waitpid(pid, 0)
    assert svc.status(tmp_path) == "stopped"
    assert svc.start(tmp_path) is True and svc.pid(tmp_path) != pid
    svc.stop(tmp_path)


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        svc = redis_service("redis-busy", s.getsockname()[1], state=tmp_path)
        with pytest.raises(StoreUnavailable, match="taken by another program"):
            svc.start(tmp_path)


def test_failed_start_reports_the_log(tmp_path):
    svc = redis_service("redis-bad", free_port(), extra_args=["--no-such-option", "1"], state=tmp_path)
    with pytest.raises(StoreUnavailable, match="exited with code") as info:
        svc.start(tmp_path)
    assert "no-such-option" in str(info.value)  # the server's own complaint, from its log


def test_local_cloud_services_answer_and_config_points_at_them(local_cloud, localstack_s3, moto_endpoint, redis_url,
                                                               oss_endpoint, tair_url, maxcompute_endpoint, tmp_path):
    status = local_cloud.status()
    assert all(s.startswith("running") for s in status.values()), status
    path = local_cloud.write_config(tmp_path, project="demo")
    cfg = config_mod.load(tmp_path)
    assert cfg.project == "demo" and cfg.online.url == redis_url
    assert cfg.registry.url.startswith("s3://") and cfg.registry.options["endpoint_url"] == localstack_s3
    assert cfg.offline.options["endpoint_url"] == localstack_s3
    assert yaml.safe_load(path.read_text())["offline"]["engine"] == "duckdb"


def test_cli_status_up_and_down_on_a_private_state(tmp_path, monkeypatch):
    for name in ("REDIS", "MOTO", "LOCALSTACK"):  # private ports: nothing else answers there
        monkeypatch.setenv(f"SKEWLESS_LOCAL_{name}_PORT", str(free_port()))
    state = tmp_path / "state"
    runner = CliRunner()
    r = runner.invoke(app, ["local", "up", "redis", "--state", str(state)])
    assert r.exit_code == 0, r.output
    assert "started now: redis" in r.output
    cloud = LocalCloud(state)
    assert cloud.status()["redis"].startswith("running")
    r = runner.invoke(app, ["local", "status", "--state", str(state)])
    assert r.exit_code == 3 and "stopped" in r.output  # localstack and moto are not up
    r = runner.invoke(app, ["local", "down", "redis", "--state", str(state)])
    assert r.exit_code == 0 and "stopped: redis" in r.output
    assert cloud.status()["redis"] == "stopped"


def test_cli_config_for_the_alibaba_cloud(tmp_path):
    runner, state = CliRunner(), str(tmp_path / "state")
    r = runner.invoke(app, ["local", "config", str(tmp_path / "mc"), "--state", state, "--cloud", "alibaba",
                            "--project", "demo"])
    assert r.exit_code == 0, r.output
    cfg = config_mod.load(tmp_path / "mc")
    assert cfg.registry.url == "oss://skewless-local/demo/registry" and cfg.registry.options["region"]
    assert cfg.engine == "maxcompute" and cfg.offline.url.startswith("maxcompute://")
    assert cfg.offline.options["table_prefix"] == "demo_"  # local projects share one emulator project
    assert cfg.online.url.startswith("tair://") and cfg.online.options == {"key_prefix": "demo"}
    r = runner.invoke(app, ["local", "config", str(tmp_path / "dd"), "--state", state, "--cloud", "alibaba",
                            "--engine", "duckdb", "--project", "demo"])
    assert r.exit_code == 0, r.output
    cfg = config_mod.load(tmp_path / "dd")
    assert cfg.engine == "duckdb" and cfg.offline.url == "oss://skewless-local/demo/offline"
    r = runner.invoke(app, ["local", "config", str(tmp_path / "x"), "--state", state, "--cloud", "gcp"])
    assert r.exit_code != 0 and "unknown cloud 'gcp'" in r.output


def test_leases_keep_services_up_while_another_session_uses_them(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("SKEWLESS_LOCAL_REDIS_PORT", str(free_port()))
    cloud = LocalCloud(tmp_path)
    assert cloud.acquire(["redis"]) == ["redis"]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # a second session's lease
    try:
        (tmp_path / "run" / "leases" / str(other.pid)).write_text("")
        assert cloud.release() == [] and cloud.status()["redis"].startswith("running")
    finally:
        other.kill()
        other.wait()
    cloud.acquire(["redis"])  # already up: started by an earlier lease, still stopped by the last one
    assert cloud.release() == ["redis"] and cloud.status()["redis"] == "stopped"
