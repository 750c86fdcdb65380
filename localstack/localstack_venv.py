"""How LocalStack runs here: host mode in its own Python 3.13 venv (no Docker engine), else its container.

LocalStack 2026.3 needs Python 3.13 (PEP 695 generics, ``warnings.deprecated``) and, in host mode, these pins. The
venv is built once per machine in ``$SKEWLESS_CACHE`` (default ``~/.cache/skewless``) under a lock, so parallel test
processes and several clones share it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from skewless.errors import ConfigError
from skewless.process import cache_dir, cached_venv

LOCALSTACK_PINS = ["localstack-core[runtime]==2026.3.0", "cbor2<6", "pyopenssl<24.3", "cryptography<44",
                   "service_identity"]
CONTAINER_IMAGE = os.environ.get("SKEWLESS_LOCALSTACK_IMAGE", "localstack/localstack:2026.3.0")


def _is_313(python: str) -> bool:
    # A pyenv shim exists even when its version is not selected: run it to be sure.
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return out.stdout.strip() == "True"


def find_python313() -> str | None:
    """``python3.13`` on PATH, then pyenv's ``versions/3.13*``."""
    candidates = [shutil.which("python3.13")]
    for root in filter(None, [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]):
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.13*", "bin", "python")), reverse=True)
    return next((c for c in candidates if c and _is_313(c)), None)


def docker_engine() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0


def ensure_venv() -> Path:
    """The LocalStack venv's python, building the venv on first use."""
    venv = cache_dir() / "localstack-2026.3.0-py313"
    if (venv / ".skewless-ready").exists():
        return venv / "bin" / "python"
    py313 = find_python313()
    if py313 is None:
        raise ConfigError("LocalStack host mode needs Python 3.13 (python3.13 on PATH or under pyenv), or a running "
                          "Docker engine for its container")
    return cached_venv(venv.name, py313, LOCALSTACK_PINS)


def command(host: str, port: int, volume: Path) -> list[str]:
    """The argv that runs LocalStack in the foreground (environment comes from the Service)."""
    volume.mkdir(parents=True, exist_ok=True)
    if find_python313() is None and docker_engine():
        return ["docker", "run", "--rm", "--name", f"skewless-localstack-{port}", "-p", f"{host}:{port}:4566",
                "-e", "SERVICES=s3,iam,sts", "-v", f"{volume}:/var/lib/localstack", CONTAINER_IMAGE]
    return [str(ensure_venv()), "-m", "localstack.runtime.main"]
