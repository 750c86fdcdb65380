"""Runtimes: how a deploy target (or an emulator) runs one model server behind an endpoint variant.

The interface is three functions, so a plain process and a container are interchangeable:

    handle = runtime.start(model_dir, env, port)   # returns once GET /ping answers 200 on loopback:port,
                                                   # else raises StoreUnavailable carrying the log's tail
    runtime.logs(handle) -> str
    runtime.stop(handle)

``model_dir`` is an unpacked artifact the platform provides (SageMaker: ``ModelDataUrl`` unpacked at
``/opt/ml/model``), or None when the server fetches a registered model itself (``SKEWLESS_MODEL`` in ``env``;
PAI-EAS custom images): the server then needs a writable place of its own, never the platform's model folder.

A handle is a JSON-serialisable dict (at least ``{"runtime": name, "port": int}``): targets persist it, so a later
CLI call (another process) can still stop or route to what an earlier one started.

``process`` (here) runs ``python -m skewless.serving serve`` in its own process group, stopped by PID;
``podman`` (``podman.py``) runs the image; what both share (host, ports, ``/ping``) is in ``loopback.py``.
``get_runtime(name)`` imports the chosen one only.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Protocol

from skewless.errors import ConfigError
from skewless.process import Service

from .loopback import HOST, ping_ok, server_env

RUNTIMES = ("process", "podman")


class Runtime(Protocol):
    name: str

    def start(self, model_dir: Path | None, env: dict[str, str], port: int) -> dict: ...

    def stop(self, handle: dict) -> None: ...

    def logs(self, handle: dict) -> str: ...


class ProcessRuntime:
    """The model server as a plain subprocess (the image's entry point, without the image)."""

    name = "process"

    def __init__(self, state_dir: str | Path | None = None, start_timeout: float = 120.0):
        # PID and log files; one folder for every server this runtime starts
        self.state = Path(state_dir) if state_dir else Path(tempfile.gettempdir()) / "skewless-runtime"
        self.start_timeout = start_timeout

    def _service(self, handle: dict, env: dict[str, str] | None = None) -> Service:
        argv = [sys.executable, "-m", "skewless.serving", "serve"]
        return Service(handle["name"], HOST, handle["port"], lambda: argv, lambda s: ping_ok(s.port, s.host),
                       env=env or {}, start_timeout=self.start_timeout, cwd=Path(handle["state"]))

    def start(self, model_dir: Path | None, env: dict[str, str], port: int) -> dict:
        handle = {"runtime": self.name, "name": f"serve-{port}", "port": port, "state": str(self.state)}
        if model_dir is None:  # the server downloads its registered model: into a folder of this server's own
            model_dir = self.state / f"{handle['name']}.model"
            shutil.rmtree(model_dir, ignore_errors=True)
        # Loopback unless the caller says otherwise: these servers are reached through a router or an emulator.
        full = {"SKEWLESS_HOST": HOST, **server_env(Path(model_dir), env, port)}
        svc = self._service(handle, full)
        svc.start(self.state)  # raises StoreUnavailable with the log's tail if /ping never answers 200
        handle["pid"] = svc.pid(self.state)
        return handle

    def stop(self, handle: dict) -> None:
        self._service(handle).stop(Path(handle["state"]))

    def logs(self, handle: dict) -> str:
        try:
            return self._service(handle).log_file(Path(handle["state"])).read_text(errors="replace")
        except OSError:
            return ""


def get_runtime(name: str = "process", **options) -> Runtime:
    """The runtime called ``name``, imported lazily (podman's module needs podman only when chosen)."""
    if name == "process":
        return ProcessRuntime(**options)
    if name == "podman":
        from .podman import PodmanRuntime

        return PodmanRuntime(**options)
    raise ConfigError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")


def runtime_for(handle: dict, **options) -> Runtime:
    """The runtime that started ``handle`` (for stopping it from another process)."""
    return get_runtime(handle.get("runtime", "process"), **options)
