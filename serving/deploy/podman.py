"""The ``podman`` runtime: the model server image run as a container, for machines without a Docker engine.

    rt = PodmanRuntime(image="localhost/credit:1")
    handle = rt.start(model_dir, {"SKEWLESS_REPO": "/srv/repo"}, 8080)   # returns once GET /ping answers 200
    rt.logs(handle); rt.stop(handle)                                     # stop: SIGTERM, log flushed

The container shares the host's network (``--network host``: the only networking that works where podman runs
with runc and cgroupfs, and it reaches loopback services such as Redis and LocalStack unchanged), so the port is
passed through the environment (``SAGEMAKER_BIND_TO_PORT`` / ``SKEWLESS_PORT``, both contracts' variables). A
model folder is mounted read-only at ``/opt/ml/model`` as SageMaker mounts ``ModelDataUrl``; without one (PAI-EAS:
the server fetches its registered model) nothing is mounted there and the server downloads into the container's
own file system. A local ``SKEWLESS_REPO`` folder is mounted at the same path, so its relative store paths (SQLite
online store, local offline store that receives the prediction log) resolve the same inside and out.

An image not present locally is pulled by ``podman run`` (as the managed platforms pull from ECR/ACR), with the
credentials of ``authfile`` (a ``podman login --authfile`` file; podman's default otherwise); a loopback registry
(``127.0.0.1:5000/...``, the local OCI registry) is plain HTTP, so TLS is not verified for it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from skewless.errors import StoreUnavailable

from ..container.build import PODMAN, ULIMITS
from .loopback import HOST, ping_ok, server_env, tail

MODEL_MOUNT = "/opt/ml/model"
DEFAULT_IMAGE = "localhost/skewless-serving:latest"


class PodmanRuntime:
    name = "podman"

    def __init__(self, image: str | None = None, state_dir: str | Path | None = None, start_timeout: float = 120.0,
                 stop_timeout: int = 30, mounts: dict[str, str] | None = None, authfile: str | Path | None = None,
                 pull_timeout: float = 600.0):
        self.image = image or os.environ.get("SKEWLESS_SERVING_IMAGE", DEFAULT_IMAGE)
        self.authfile, self.pull_timeout = authfile, pull_timeout
        # Logs of stopped containers are kept here: the container is removed on stop, its log is not lost.
        self.state = Path(state_dir) if state_dir else Path(tempfile.gettempdir()) / "skewless-runtime"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout  # uvicorn's graceful shutdown is 30 s: answer the queue, flush the log
        self.mounts = dict(mounts or {})  # host path -> container path, read-write

    def _podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise StoreUnavailable(f"podman {args[0]} did not finish within {timeout:.0f}s") from exc
        if check and proc.returncode != 0:
            raise StoreUnavailable(f"podman {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def _running(self, name: str) -> bool:
        out = self._podman("inspect", "--format", "{{.State.Running}}", name, check=False)
        return out.returncode == 0 and out.stdout.strip() == "true"

    def _pull_args(self) -> list[str]:
        args = ["--authfile", str(self.authfile)] if self.authfile else []
        host = self.image.split("/", 1)[0] if "/" in self.image else ""
        if host.split(":")[0] in ("127.0.0.1", "localhost", "[::1]"):
            args.append("--tls-verify=false")
        return args

    def start(self, model_dir: Path | None, env: dict[str, str], port: int) -> dict:
        name = f"skewless-serve-{port}"
        # A container of ours left on this port by a crashed run: the name says it is ours to replace.
        self._podman("rm", "--force", "--time", "5", name, check=False)
        full = {"SKEWLESS_HOST": HOST, **server_env(Path(MODEL_MOUNT) if model_dir else None, env, port)}
        volumes = {str(Path(model_dir).resolve()): f"{MODEL_MOUNT}:ro"} if model_dir else {}
        repo = env.get("SKEWLESS_REPO")
        if repo and Path(repo).is_absolute() and Path(repo).is_dir():
            volumes[repo] = repo
        volumes.update(self.mounts)
        self.state.mkdir(parents=True, exist_ok=True)
        # Variables go through a 0600 file, not argv: tokens would show in `ps` and podman's own logs.
        with tempfile.NamedTemporaryFile("w", dir=self.state, prefix=".env-", delete=True) as env_file:
            env_file.write("".join(f"{k}={v}\n" for k, v in full.items()))
            env_file.flush()
            vol_args = [a for host, ctr in volumes.items() for a in ("--volume", f"{host}:{ctr}")]
            self._podman("run", "--detach", "--name", name, "--network", "host", *ULIMITS, *self._pull_args(),
                         "--stop-timeout", str(self.stop_timeout), "--env-file", env_file.name, *vol_args,
                         self.image, "serve", timeout=self.pull_timeout)
        handle = {"runtime": self.name, "name": name, "port": port, "image": self.image, "state": str(self.state)}
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if ping_ok(port):
                return handle
            if not self._running(name):
                log = self._fetch_logs(name)
                self.stop(handle)
                raise StoreUnavailable(f"container {name} ({self.image}) exited while starting:\n{tail(log, 30)}",
                                       endpoint=f"{HOST}:{port}")
            time.sleep(0.2)
        log = self._fetch_logs(name)
        self.stop(handle)
        raise StoreUnavailable(f"container {name} ({self.image}) did not answer /ping within "
                               f"{self.start_timeout:.0f}s:\n{tail(log, 30)}", endpoint=f"{HOST}:{port}")

    def _fetch_logs(self, name: str) -> str:
        out = self._podman("logs", name, check=False)
        return out.stdout + out.stderr if out.returncode == 0 else ""

    def _log_file(self, handle: dict) -> Path:
        return Path(handle.get("state", self.state)) / f"{handle['name']}.container.log"

    def stop(self, handle: dict) -> None:
        """SIGTERM (the server answers what is queued and flushes the prediction log), SIGKILL after the stop
        timeout; the log is saved beside the state, then the container is removed."""
        name = handle["name"]
        self._podman("stop", "--time", str(self.stop_timeout), name, check=False, timeout=self.stop_timeout + 60)
        log = self._fetch_logs(name)
        if log:
            self._log_file(handle).parent.mkdir(parents=True, exist_ok=True)
            self._log_file(handle).write_text(log)
        self._podman("rm", "--force", name, check=False)

    def logs(self, handle: dict) -> str:
        live = self._fetch_logs(handle["name"])
        if live:
            return live
        try:
            return self._log_file(handle).read_text(errors="replace")
        except OSError:
            return ""
