"""A service as an OS process (idempotent start, health check, clean stop by PID), and the per-user cache folder.

The core owns these because more than the local cloud runs processes: the model server's ``process`` runtime
(``skewless.serving.deploy.runtime``) does, and the image build caches its base image in ``cache_dir()``.

State lives in a folder of the project (``<state>/<name>.pid``, ``<name>.log``). A service that is already running
and healthy is reused, never started twice; a stale PID file (process gone) is cleaned up. Processes start in their
own session so ``stop`` can signal the whole group (LocalStack forks helpers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from skewless.errors import StoreUnavailable


def cache_dir() -> Path:
    """``$SKEWLESS_CACHE``, default ``~/.cache/skewless``: what is built once per machine (shared by clones)."""
    return Path(os.environ.get("SKEWLESS_CACHE", Path.home() / ".cache" / "skewless"))


def cached_venv(name: str, base_python: str, pins: list[str]) -> Path:
    """The python of venv ``cache_dir()/name`` holding ``pins``, built on first use by ``base_python`` under a lock
    (parallel processes and clones build it once; a failed build leaves no ready marker). ConfigError on failure."""
    import fcntl
    import shutil
    import sys

    from skewless.errors import ConfigError

    venv = cache_dir() / name
    python, marker = venv / "bin" / "python", venv / ".skewless-ready"
    if marker.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        print(f"==> building the venv {venv} for {' '.join(pins)} (once per machine)", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(f"installing {' '.join(pins)} failed:\n{proc.stderr[-3000:]}")
        marker.write_text("ok\n")
    return python


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


@dataclass
class Service:
    name: str
    host: str
    port: int
    command: Callable[[], list[str]]  # built lazily: may install things (LocalStack's venv)
    healthy: Callable[["Service"], bool]
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0
    cwd: Path | None = None

    # -- files -------------------------------------------------------------------------------------------
    def pid_file(self, state: Path) -> Path:
        return state / f"{self.name}.pid"

    def log_file(self, state: Path) -> Path:
        return state / f"{self.name}.log"

    def pid(self, state: Path) -> int | None:
        try:
            pid = int(self.pid_file(state).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def status(self, state: Path) -> str:
        pid = self.pid(state)
        if self.is_healthy():
            return f"running (pid {pid})" if pid else "running (not started by skewless)"
        return f"unhealthy (pid {pid})" if pid else "stopped"

    def is_healthy(self) -> bool:
        try:
            return self.healthy(self)
        except Exception:  # noqa: BLE001 - a failing probe means "not healthy", whatever it raised
            return False

    def start(self, state: Path) -> bool:
        """Start unless already healthy. Returns True if this call started the process."""
        state.mkdir(parents=True, exist_ok=True)
        if self.is_healthy():
            return False
        if self.pid(state) is None and port_open(self.host, self.port):
            raise StoreUnavailable(f"{self.name}: port {self.port} is taken by another program; set "
                                   f"SKEWLESS_LOCAL_{self.name.upper()}_PORT to use another", endpoint=self.endpoint)
        self.stop(state)  # a stale or unhealthy leftover of ours
        argv = self.command()
        log = open(self.log_file(state), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **self.env}, cwd=self.cwd or state, start_new_session=True)
        log.close()
        self.pid_file(state).write_text(str(proc.pid))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StoreUnavailable(f"{self.name} exited with code {proc.returncode} while starting; see "
                                       f"{self.log_file(state)}:\n{self.tail(state)}", endpoint=self.endpoint)
            if self.is_healthy():
                return True
            time.sleep(0.1)
        self.stop(state)
        raise StoreUnavailable(f"{self.name} was not healthy after {self.start_timeout:.0f}s; see "
                               f"{self.log_file(state)}:\n{self.tail(state)}", endpoint=self.endpoint)

    def stop(self, state: Path, timeout: float = 10.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout``. Returns True if something was stopped."""
        pid = self.pid(state)
        self.pid_file(state).unlink(missing_ok=True)
        if pid is None:
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    try:  # reap it if it is our child
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                    return True
                time.sleep(0.05)
        return True

    def tail(self, state: Path, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file(state).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
