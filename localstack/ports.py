"""Where the local services listen and how they are probed, shared by ``cloud.py`` and every emulator's
``service()`` (so the emulators need not import the cloud that starts them).

Ports default to LocalStack 4566, moto 5055, Redis 6390, OSS 5056, MaxCompute 5057, Tair 6391, DataHub 5058 and can be moved with
``SKEWLESS_LOCAL_<NAME>_PORT``.
"""

from __future__ import annotations

import os
import urllib.request

from skewless.errors import ConfigError

HOST = "127.0.0.1"
DEFAULT_PORTS = {"localstack": 4566, "moto": 5055, "redis": 6390, "oss": 5056, "maxcompute": 5057, "tair": 6391,
                 "datahub": 5058}


def service_port(name: str) -> int:
    """The port of service ``name``: ``$SKEWLESS_LOCAL_<NAME>_PORT``, else its default."""
    raw = os.environ.get(f"SKEWLESS_LOCAL_{name.upper()}_PORT")
    try:
        return int(raw) if raw else DEFAULT_PORTS[name]
    except ValueError as exc:
        raise ConfigError(f"SKEWLESS_LOCAL_{name.upper()}_PORT must be a port number, got {raw!r}") from exc


def http_ok(url: str, timeout: float = 1.0) -> bytes | None:
    """The body of a 200 answer to GET ``url``, else None (nothing listening, or another status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.read() if resp.status == 200 else None
    except OSError:
        return None
