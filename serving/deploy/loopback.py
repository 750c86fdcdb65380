"""How a runtime's model server is reached on this machine, shared by every runtime (``runtime.py``'s process,
``podman.py``'s container): the loopback host, a free port, the ``/ping`` probe, the server's environment and a log's
tail."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def ping_ok(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status == 200
    except OSError:
        return False


def server_env(model_dir: Path | None, env: dict[str, str], port: int) -> dict[str, str]:
    """The server's environment: the caller's variables plus where the model is (if given) and which port to bind
    (both contracts' port variables, whichever the configured contract reads)."""
    out = {**env, "SAGEMAKER_BIND_TO_PORT": str(port), "SKEWLESS_PORT": str(port)}
    if model_dir is not None:
        out["SKEWLESS_MODEL_DIR"] = str(model_dir)
    return out


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])

