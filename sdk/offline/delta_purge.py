"""What a purge's vacuum must delete from a Delta history whatever its checkpoints say (``DeltaErasure._vacuum``).

delta-rs' vacuum reads the table as delta-rs opens it: the newest checkpoint, then the commits after it. A
checkpoint keeps a removed file only for the table's ``delta.deletedFileRetentionDuration`` (a week by default), so
once one is written that long after a delete, delta-rs never lists the files the delete removed again, and a purge
waiting for a longer ``history_retention`` would leave the erased rows in storage while reporting it done. Hence:

- ``replay``: a scratch table whose log is every commit entry and no checkpoint, on which delta-rs' dry run lists
  every removal past the retention that no kept version reads: the decision stays delta-rs';
- ``unreferenced``: when Delta's log cleanup (entries older than ``delta.logRetentionDuration``, 30 days by default,
  dropped at a checkpoint) already removed commit entries, their removals are in no log at all; then the history's
  folder is listed and every Parquet file no readable version reads is unreferenced
  (``DeltaErasure._unread_files``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote

_FETCHERS = 16  # log entries read at once (object stores: one GET each)
# A Parquet file no version reads is a writer's not yet committed while younger than this (as ``clean_orphans``).
MIN_AGE_HOURS = 1


def entries(log_entry: Callable[[int], bytes | None], versions: Iterable[int]):
    """(version, bytes or None when gone) of each of ``versions``, fetched in parallel, in order."""
    versions = list(versions)
    with ThreadPoolExecutor(_FETCHERS) as pool:
        yield from zip(versions, pool.map(log_entry, versions))


def replay(log_entry: Callable[[int], bytes | None], newest: int) -> Path | None:
    """A scratch table (a temporary folder: the caller removes it) whose log is the commit entries 0..``newest``
    read through ``log_entry``, and no checkpoint; None when some entry is gone."""
    work = Path(tempfile.mkdtemp(prefix="skewless-log-"))
    (work / "_delta_log").mkdir()
    try:
        for version, data in entries(log_entry, range(newest + 1)):
            if data is None:
                shutil.rmtree(work, ignore_errors=True)
                return None
            (work / "_delta_log" / f"{version:020d}.json").write_bytes(data)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return work


def removed(entry: bytes) -> set[str]:
    """The paths (relative to the table, decoded) of the files a commit entry removes."""
    out = set()
    for line in entry.decode().splitlines():
        action = json.loads(line) if line.strip() else {}
        if "remove" in action:
            out.add(unquote(action["remove"]["path"]))
    return out


def paths_of(dt) -> set[str]:
    """The paths (relative to the table, decoded) of the files one version of a ``DeltaTable`` reads."""
    return {unquote(p) for p in dt.get_add_actions(flatten=True).column("path").to_pylist()}


def unreferenced(stored: dict[str, float], read: set[str], *, min_age_hours: float = MIN_AGE_HOURS) -> list[str]:
    """The Parquet data files among ``stored`` (relative path -> modification time, seconds since the epoch) that
    no version in ``read`` reads and no writer may still be about to commit (older than ``min_age_hours``)."""
    before = time.time() - min_age_hours * 3600
    return sorted(p for p, at in stored.items()
                  if p.endswith(".parquet") and not p.startswith("_delta_log/") and p not in read and at < before
                  and not any(part.startswith((".", "_")) for part in p.split("/")))
