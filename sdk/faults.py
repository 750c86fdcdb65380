"""A test hook for the fault-injection suite (tests/*/test_faults_*.py): ``SKEWLESS_KILL_AT=<point>[:<n>]`` makes the
process SIGKILL itself the ``n``-th time (default: the first) it reaches the named ``point``, so a test can stop a
subprocess at an exact place of a write (see the ``kill_point`` calls). Unset, a call is one comparison with None.
Never set it outside tests."""

from __future__ import annotations

import os
import signal

_AT = os.environ.get("SKEWLESS_KILL_AT") or None
_name, _, _nth = (_AT or "").partition(":")
_left = int(_nth or 1)


def kill_point(name: str) -> None:
    """SIGKILL this process here when ``SKEWLESS_KILL_AT`` names this point (and this is its ``n``-th arrival)."""
    global _left
    if _AT is None or name != _name:
        return
    _left -= 1
    if _left == 0:
        os.kill(os.getpid(), signal.SIGKILL)
