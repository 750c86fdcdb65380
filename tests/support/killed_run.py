"""A Python snippet run as a child process, optionally killed with SIGKILL at a ``kill_point`` (skewless.faults):
the fault tests' "kill -9 here, then run again" step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def run(code: str, *args: str, kill_at: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` with ``args`` (``sys.argv[1:]``); with ``kill_at``, assert it died by SIGKILL there."""
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if kill_at:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    """The JSON document a child printed last."""
    return json.loads(proc.stdout.strip().splitlines()[-1])


def killed_then_rerun(code: str, *args: str, kill_at: str, timeout: float = 300) -> dict:
    """``code`` killed at ``kill_at``, then run again to the end: the JSON document the rerun printed last."""
    run(code, *args, kill_at=kill_at, timeout=timeout)
    return last_json(run(code, *args, timeout=timeout))
