"""Write-time statistics in a Delta history's commits (skewless.statistics has the record; this is where it lives).

An append's commit metadata holds the statistics of its own rows (``STATS``). The first append (version 0), and
later an append whenever the newest cumulative record is ``CUMULATIVE_EVERY`` versions old, also holds the merge
of every append up to and including it (``STATS_TOTAL``; "=" when that equals its own). Which version holds the
newest cumulative record, and which append was last written without statistics, are Delta app transactions (every
snapshot keeps them, so a writer reads them without a log scan). Version N's statistics: its commit and the ones
before it, newest first, up to the first one with a cumulative record. Non-append commits (table properties,
compaction, vacuum) change no rows and carry none; an append without statistics breaks the chain, and every
version from it on has none (``StatisticsUnavailable``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from deltalake import Transaction

from .. import statistics as stats_mod
from ..errors import StatisticsUnavailable

STATS, STATS_TOTAL = "skewless.stats", "skewless.statsTotal"
_TOTAL_TXN = "skewless.statsTotal"  # app transaction: the newest version holding a cumulative record
_GAP_TXN = "skewless.statsGap"  # app transaction: the newest append committed without statistics
_BATCH = "skewless.batch"  # what marks an append's commit (delta.BATCH)
_FETCH = 16  # log entries read at once

# ``info(version)``: the commitInfo of that version's commit (None when its log entry is gone).
CommitInfo = Callable[[int], "dict | None"]


def read_entry(uri: str) -> bytes | None:
    """A log entry's bytes through pyarrow's file systems (None: no such entry)."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def commit_info(entry: bytes | None) -> dict | None:
    """The commitInfo action of one log entry (a commit's JSON lines)."""
    if entry is None:
        return None
    for line in entry.splitlines():
        if line.startswith(b'{"commitInfo"'):
            return json.loads(line)["commitInfo"]
    return {}


def entries(before, created: int, own: str | None, info: CommitInfo) -> tuple[dict, list]:
    """The metadata and app transactions an append committing version ``created`` on top of ``before`` (None: a
    new table) adds for statistics ``own`` (None: written without)."""
    if own is None:
        return {}, [Transaction(_GAP_TXN, created)]
    meta = {STATS: own}
    if before is None or created == 0:
        return {**meta, STATS_TOTAL: "="}, [Transaction(_TOTAL_TXN, created)]
    last = before.transaction_version(_TOTAL_TXN)
    gap = before.transaction_version(_GAP_TXN)
    if last is None or (gap is not None and gap > last) or created - last < stats_mod.CUMULATIVE_EVERY:
        return meta, []
    try:
        parts = records("", created - 1, info, floor=last)
    except StatisticsUnavailable:  # the chain is broken after all (a log entry gone): no cumulative record
        return meta, []
    return {**meta, STATS_TOTAL: stats_mod.merge_encoded(parts + [own])}, [Transaction(_TOTAL_TXN, created)]


def _newest_first(info: CommitInfo, version: int, floor: int):
    """(version, commitInfo) from ``version`` down to ``floor``, read _FETCH at a time in parallel: on an object
    store each is a GET, and up to CUMULATIVE_EVERY of them stand between a version and its cumulative record."""
    with ThreadPoolExecutor(_FETCH) as pool:
        for top in range(version, floor - 1, -_FETCH):
            chunk = list(range(top, max(top - _FETCH, floor - 1), -1))
            yield from zip(chunk, pool.map(info, chunk))


def records(view: str, version: int, info: CommitInfo, floor: int = 0) -> list[str]:
    """The encoded records that merge into version ``version``'s statistics: the newest cumulative one at or below
    it (at ``floor`` or above) and the per-append ones after it. StatisticsUnavailable when there is none, naming
    the append that broke the chain."""
    deltas: list[str] = []
    for v, ci in _newest_first(info, version, floor):
        if ci is None:
            raise StatisticsUnavailable(f"history of {view!r}: the log entry of version {v} is gone (cleaned "
                                        f"up), so version {version} has no statistics", view=view, version=version)
        total = ci.get(STATS_TOTAL)
        if total:
            return [ci[STATS] if total == "=" else total] + deltas
        if STATS in ci:
            deltas.append(ci[STATS])
        elif _BATCH in ci:
            raise StatisticsUnavailable(
                f"version {version} of {view!r} has no statistics: version {v} was appended without them (written "
                f"before skewless recorded statistics, or with statistics off)", view=view, version=version)
    raise StatisticsUnavailable(f"version {version} of {view!r} has no statistics: its first version was written "
                                f"without them", view=view, version=version)
