"""Erasure and retention of Delta histories on OSS: the hooks ``DeltaErasure`` (``skewless.offline.delta_erase``)
leaves to stores that commit through their own log store. What is deleted, the commit, its tag and the expiry
record stay delta-rs' and ``DeltaErasure``'s; this module supplies only what an OSS history lacks locally.

- A delete (``_commit_erase``): delta-rs' DELETE runs on the scratch table ``OSSOfflineStore._commit`` builds from
  the mirrored log, which has no data files. The files that may hold a matching row are picked from the log's own
  file statistics (min/max per column, partition values: no file is opened) and only those are downloaded; delta-rs
  prunes with the same statistics, so it opens no other. Should it ask for one anyway (statistics it reads
  differently), the delete is redone with every file. Its rewritten files and the log entry go up as any commit's.
  The entry's ``operationParameters.predicate`` names the deleted keys: it is replaced by the forget request's tag
  before the entry is published, so the log does not keep the very values a forget erases.
- Vacuum: ``DeltaErasure._vacuum`` has delta-rs list, from the log alone, the removed files past the retention that
  no kept version reads (its dry run needs no data file), replaying every commit; here ``_every_entry`` builds that
  replay from the local mirror of the log, and ``_delete_files`` deletes those objects on OSS.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from skewless.definitions import EVENT_TS
from skewless.errors import StoreUnavailable
from skewless.offline.delta_erase import FORGET_TAG, Erasing

REDACTED = "<keys erased by skewless forget: see the request {tag}>"


def _in_range(value, lo, hi) -> bool:
    """Whether ``value`` may lie within a file's [lo, hi] statistics (None: unknown, so it may). Strings: Delta
    truncates long minima and maxima to a prefix (a truncated minimum is still below every value); a value above
    a truncated maximum yet within the true one starts with it."""
    if lo is None or hi is None:
        return True
    try:
        if isinstance(value, str):
            return lo <= value and (value <= hi or value.startswith(hi))
        return lo <= value <= hi
    except TypeError:  # statistics of another type than the key's: cannot exclude
        return True


def files_holding(adds: pa.Table, rows: Erasing) -> list[str]:
    """The paths of the files among ``adds`` (``get_add_actions(flatten=True)``) that may hold one of ``rows``:
    exact in the sense that a file left out cannot hold one (its statistics exclude every row), cheap in that
    nothing but the log is read. O(files x keys)."""
    cols = adds.column_names

    def column(name):
        return adds.column(name).to_pylist() if name in cols else [None] * adds.num_rows

    paths = adds.column("path").to_pylist()
    if rows.before_us is not None:
        lo = adds.column(f"min.{EVENT_TS}") if f"min.{EVENT_TS}" in cols else None
        if lo is None:
            return paths
        lo = lo.cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist()
        # (Delta truncates timestamp statistics to milliseconds: a minimum only ever reads low, never excludes wrongly)
        return [p for p, m in zip(paths, lo) if m is None or m < rows.before_us]
    names = list(rows.key_dtypes or {})
    stats = {c: (column(f"min.{c}"), column(f"max.{c}"), column(f"partition.{c}")) for c in names}
    out = []
    for i, path in enumerate(paths):
        for key in rows.keys:
            if all(_in_range(v, stats[c][0][i], stats[c][1][i]) and
                   (stats[c][2][i] is None or type(stats[c][2][i]) is not type(v) or stats[c][2][i] == v)
                   for c, v in zip(names, key)):
                out.append(path)
                break
    return out


def redact_predicate(entry: bytes) -> bytes:
    """A DELETE log entry of forget's (its commit tagged ``FORGET_TAG``) with the predicate, which lists the keys,
    replaced by the request's tag; any other entry as it is."""
    lines = entry.decode().splitlines()
    for i, line in enumerate(lines):
        action = json.loads(line) if line.strip() else {}
        info = action.get("commitInfo")
        if info and FORGET_TAG in info and "predicate" in (info.get("operationParameters") or {}):
            info["operationParameters"]["predicate"] = REDACTED.format(tag=info[FORGET_TAG])
            lines[i] = json.dumps(action, separators=(",", ":"))
    return ("\n".join(lines) + "\n").encode()


class OSSErasure:
    """Mixed into ``OSSOfflineStore`` before ``DeltaOfflineStore`` (whose ``DeltaErasure`` calls these hooks)."""

    supports_erasure = True
    _commit: Callable
    _sync: Callable
    _log: Callable
    _log_entry: Callable
    _cache: Path
    root: str
    erase_reads: list  # (view, files downloaded, files in the version read) per delete: what it cost
    loc: object
    oss: object

    def _commit_erase(self, view: str, before: DeltaTable, write: Callable, rows: Erasing) -> None:
        adds = pa.table(before.get_add_actions(flatten=True))
        every = adds.column("path").to_pylist()
        redact = redact_predicate if rows.keys else None  # a retention delete's predicate is a time, kept
        fetch = files_holding(adds, rows)
        self.erase_reads.append((view, len(fetch), len(every)))
        if not fetch:
            return  # no file may hold a row: nothing to commit (delta-rs would commit nothing either)
        try:
            self._commit(view, before, write, fetch=fetch, optional=True, entry=redact)
        except CommitFailedError:
            raise
        except DeltaError as exc:
            if "not found" not in str(exc).lower() or len(fetch) == len(every):
                raise
            self.erase_reads.append((view, len(every), len(every)))  # delta-rs read a file the statistics excluded
            self._commit(view, before, write, fetch=every, optional=True, entry=redact)

    def _every_entry(self, view: str) -> Path | None:
        """A scratch table whose log is every commit entry of the history, no checkpoint (None: some entry is gone, or
        no table). Why: a checkpoint drops the removed files whose ``delta.deletedFileRetentionDuration`` (a week by
        default) has passed, so a vacuum reading it would never list them again, and a purge waiting for a longer
        history retention would leave the erased rows on OSS; replaying the commits keeps every removal."""
        newest = self._sync(view)
        if newest is None:
            return None
        log = self._log(view)
        names = [f"{v:020d}.json" for v in range(newest + 1)]
        for name in names:
            path = log.folder / "_delta_log" / name
            if not path.exists():
                data = self._log_entry(view, int(name[:20]))
                if data is None:
                    return None
                with log.lock:
                    tmp = path.with_name(f".{name}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
        work = Path(tempfile.mkdtemp(prefix="log-", dir=self._cache))
        (work / "_delta_log").mkdir()
        for name in names:
            os.link(log.folder / "_delta_log" / name, work / "_delta_log" / name)
        return work

    def _delete_files(self, view: str, paths: list[str]) -> list[str]:
        """The vacuum's deletes (``DeltaErasure._vacuum`` lists them from ``_every_entry``'s replay), with oss2."""
        keys = [self.loc.key(view, p) for p in paths]
        for i in range(0, len(keys), 1000):  # OSS deletes at most 1000 objects per request
            self.oss.call(f"vacuuming the history of {view!r}", self.oss.bucket.batch_delete_objects, keys[i:i + 1000])
        return paths

    def version_times(self, view: str) -> list[tuple[int, int]]:
        """Every kept commit's time, from every log entry (the mirror holds only those after the newest checkpoint)."""
        work = self._every_entry(view)
        if work is None:
            return super().version_times(view)
        try:
            return sorted((int(i["version"]), int(i["timestamp"])) for i in DeltaTable(str(work)).history())
        except DeltaError as exc:
            raise StoreUnavailable(f"reading the history log of {view!r} failed: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
