"""Erasure and retention of Delta histories (``DeltaOfflineStore`` inherits this): row deletes by entity key,
vacuum, and the record of which versions are expired.

A delete is one Delta ``DELETE`` commit: the files holding matching rows are rewritten without them and the old
files only marked removed, so older versions still read the rows until ``vacuum`` deletes the files they alone
reference. Which versions a retention run or a purge made unreadable is recorded in the table's own properties
(``EXPIRED_BEFORE``, ``KEPT``), committed *before* the vacuum deletes anything: a reader asking for such a version
gets ``SnapshotExpired`` (``check_readable``) instead of a scan that fails half-way, or silently reads other files.

The vacuum is delta-rs' decision (its dry run: removed past the retention, read by no kept version) taken on a replay
of every commit entry rather than on the table as delta-rs opens it, and the files it lists are deleted here. Why: a
checkpoint keeps a removal only for the table's ``delta.deletedFileRetentionDuration`` (a week by default), so once a
checkpoint is written that long after a delete, delta-rs' own vacuum never lists the files the delete removed
again, and a purge waiting for a longer ``history_retention`` would leave the erased rows on disk while reporting
it done. Replaying the commits keeps every removal, whatever checkpoints exist.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from deltalake import CommitProperties, DeltaTable
from pyarrow import fs as pafs
from deltalake.exceptions import CommitFailedError, DeltaError

from .. import dtypes
from ..definitions import EVENT_TS
from ..errors import ConflictError, StoreUnavailable, ValidationError

FORGET_TAG = "skewless.forget"  # commit metadata of a delete made by forget / a retention run: its request id
EXPIRED_BEFORE, KEPT = "skewless.expiredBefore", "skewless.keptVersions"
_ATTEMPTS = 30
_SEARCH = 200  # newest commits searched for a tagged delete (a forget resumed soon after it was killed)
_FETCHERS = 16  # log entries read at once for a replay (object stores: one GET each)


def _name(column: str) -> str:
    """A column name in delta-rs' predicate dialect (DataFusion)."""
    return '"' + column.replace('"', '""') + '"'


def _string(value: str) -> str:
    """A string literal in delta-rs' predicate dialect (DataFusion)."""
    return "'" + value.replace("'", "''") + "'"


def _literal(value, dt, string: Callable[[str], str] = _string) -> str:
    """A key value as a SQL literal (strings quoted by ``string``: dialects differ only there)."""
    if value is None:
        raise ValidationError("an entity key to forget is null")
    if dt in (dtypes.Int32, dtypes.Int64):
        return str(int(value))
    if dt is dtypes.String:
        return string(str(value))
    if dt is dtypes.Bool:
        return "true" if value else "false"
    if dt in (dtypes.Float32, dtypes.Float64) and math.isfinite(float(value)):
        return repr(float(value))
    raise ValidationError(f"entity keys of dtype {dt.name} cannot be forgotten by value (Int, String, Bool, Float)")


def keys_predicate(key_dtypes: dict, keys: list[tuple], *, name: Callable[[str], str] = _name,
                   string: Callable[[str], str] = _string) -> str:
    """SQL true for a row whose columns ``key_dtypes`` equal one of ``keys``; ``name`` quotes a column and
    ``string`` a string literal (delta-rs' dialect by default; MaxCompute's SQL passes its own)."""
    cols = list(key_dtypes)
    quoted = [name(c) for c in cols]
    if len(cols) == 1:
        return f"{quoted[0]} IN ({', '.join(_literal(k[0], key_dtypes[cols[0]], string) for k in keys)})"
    return " OR ".join("(" + " AND ".join(f"{q} = {_literal(v, key_dtypes[c], string)}"
                                          for q, c, v in zip(quoted, cols, k)) + ")" for k in keys)


@dataclass(frozen=True)
class Erasing:
    """The rows one delete removes: its predicate for delta-rs, and the same rows as values, for stores that pick
    the files a delete must read from the log's file statistics (``_commit_erase``)."""

    predicate: str  # delta-rs' SQL (DataFusion)
    key_dtypes: dict | None = None  # rows whose columns equal one of ``keys`` ...
    keys: tuple = ()
    before_us: int | None = None  # ... or whose event time is before this (µs since the epoch, UTC)


class DeltaErasure:
    """Mixed into ``DeltaOfflineStore`` (which provides ``_table``, ``_commit``, ``_log_entry``, ``_uri``, ``root``).
    Stores that commit through their own log store override the hooks ``_commit_erase`` and ``_every_entry``
    (``oss_erase``); object stores override ``_delete_files``."""

    supports_erasure = True
    root: str
    _table: Callable
    _commit: Callable
    _log_entry: Callable
    _uri: Callable

    def delete_rows(self, view: str, key_dtypes: dict, keys: list[tuple], *, tag: str) -> tuple[int, int | None]:
        if not keys:
            return 0, None
        return self._delete(view, Erasing(keys_predicate(key_dtypes, keys), dict(key_dtypes), tuple(keys)), tag)

    def delete_before(self, view: str, before: datetime, *, tag: str) -> tuple[int, int | None]:
        us = int(before.astimezone(timezone.utc).timestamp() * 1_000_000)
        return self._delete(view, Erasing(f"\"{EVENT_TS}\" < arrow_cast({us}, 'Timestamp(Microsecond, Some(\"UTC\"))')",
                                          before_us=us), tag)

    def _commit_erase(self, view: str, before: DeltaTable, write: Callable, rows: Erasing) -> None:
        """The delete's commit (``write(table)``): by default ``_commit``; ``rows`` says what it deletes."""
        self._commit(view, before, write)

    def _delete(self, view: str, rows: Erasing, tag: str) -> tuple[int, int | None]:
        predicate = rows.predicate
        for attempt in range(_ATTEMPTS):
            before = self._table(view)
            if before is None:
                return 0, None
            done = self._tagged_delete(before, tag)
            if done is not None:
                return done
            read = before.version()  # (delete moves ``before`` itself to the version it commits)
            out: list[dict] = []
            props = CommitProperties(custom_metadata={FORGET_TAG: tag}, max_commit_retries=0)
            try:
                self._commit_erase(view, before, lambda dt, o=out, c=props: o.append(
                    dt.delete(predicate, commit_properties=c)), rows)
            except CommitFailedError:
                time.sleep(min(0.01 * 2 ** attempt, 0.5))  # another writer committed first: re-read, retry
                continue
            except (DeltaError, OSError) as exc:
                raise StoreUnavailable(f"deleting rows of the history of {view!r} failed: "
                                       f"{str(exc).splitlines()[0]}", endpoint=self.root) from exc
            rows = int((out[0] if out else {}).get("num_deleted_rows", 0))
            after = self._table(view)
            # delta-rs commits nothing when no file holds a matching row
            return rows, (after.version() if after is not None and after.version() > read else None)
        raise ConflictError(f"delete in the history of {view!r}: {_ATTEMPTS} concurrent commits won first")

    @staticmethod
    def _tagged_delete(dt: DeltaTable, tag: str) -> tuple[int, int] | None:
        """(rows, version) of a delete commit tagged ``tag`` among the newest commits, None when there is none."""
        try:
            for info in dt.history(_SEARCH):
                if info.get(FORGET_TAG) == tag:
                    metrics = info.get("operationMetrics") or {}
                    return int(metrics.get("num_deleted_rows", 0)), int(info["version"])
        except DeltaError:  # older log entries cleaned up: no tagged commit can be found there
            return None
        return None

    def vacuum(self, view: str, *, retention_hours: float, keep_versions: list[int]) -> list[str]:
        dt = self._table(view)
        if dt is None:
            return []
        try:
            return self._vacuum(view, dt, retention_hours=max(0, int(retention_hours)), enforce_retention_duration=False,
                                keep_versions=sorted(set(keep_versions)) or None)
        except (DeltaError, OSError) as exc:
            raise StoreUnavailable(f"vacuuming the history of {view!r} failed: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc

    def _vacuum(self, view: str, dt: DeltaTable, **options) -> list[str]:
        """The files delta-rs' vacuum with ``options`` lists from every commit of the history (see the module
        docstring), deleted; returns those deleted. A history some of whose commit entries are gone (Delta's log
        cleanup) is vacuumed from ``dt`` as delta-rs opens it."""
        work = self._every_entry(view)
        try:
            listed = (DeltaTable(str(work)) if work is not None else dt).vacuum(dry_run=True, **options)
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        return self._delete_files(view, [unquote(p) for p in listed])

    def _every_entry(self, view: str) -> Path | None:
        """A scratch table (a temporary folder: the caller removes it) whose log is every commit entry of the
        history, read through ``_log_entry``, and no checkpoint; None when some entry is gone, or no table."""
        dt = self._table(view)
        if dt is None:
            return None
        versions = range(dt.version() + 1)
        work = Path(tempfile.mkdtemp(prefix="skewless-log-"))
        (work / "_delta_log").mkdir()
        try:
            with ThreadPoolExecutor(_FETCHERS) as pool:
                for version, data in zip(versions, pool.map(lambda v: self._log_entry(view, v), versions)):
                    if data is None:
                        shutil.rmtree(work, ignore_errors=True)
                        return None
                    (work / "_delta_log" / f"{version:020d}.json").write_bytes(data)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return work

    def _delete_files(self, view: str, paths: list[str]) -> list[str]:
        """Delete the data files ``paths`` (relative to the history's folder) from a local history; returns those
        that were there (a replay lists again the files an earlier vacuum deleted)."""
        filesystem, base = pafs.FileSystem.from_uri(self._uri(view))
        gone = []
        for path in paths:
            try:
                filesystem.delete_file(f"{base}/{path}")
            except FileNotFoundError:
                continue
            gone.append(path)
        return gone

    def expiry(self, view: str) -> tuple[int, list[int]] | None:
        dt = self._table(view)
        config = dt.metadata().configuration if dt is not None else {}
        if EXPIRED_BEFORE not in config:
            return None
        kept = config.get(KEPT) or ""
        return int(config[EXPIRED_BEFORE]), [int(v) for v in kept.split(",") if v]

    def set_expiry(self, view: str, oldest: int, kept: list[int]) -> None:
        props = {EXPIRED_BEFORE: str(oldest), KEPT: ",".join(str(v) for v in sorted(set(kept)))}
        for attempt in range(_ATTEMPTS):
            before = self._table(view)
            if before is None:
                return
            try:
                self._commit(view, before, lambda dt: dt.alter.set_table_properties(
                    props, raise_if_not_exists=False, commit_properties=CommitProperties(max_commit_retries=0)))
                return
            except CommitFailedError:
                time.sleep(min(0.01 * 2 ** attempt, 0.5))
            except (DeltaError, OSError) as exc:
                raise StoreUnavailable(f"recording the retention of {view!r} failed: {str(exc).splitlines()[0]}",
                                       endpoint=self.root) from exc
        raise ConflictError(f"recording the retention of {view!r}: {_ATTEMPTS} concurrent commits won first")

    def version_times(self, view: str) -> list[tuple[int, int]]:
        dt = self._table(view)
        if dt is None:
            return []
        try:
            return sorted((int(i["version"]), int(i["timestamp"])) for i in dt.history())
        except DeltaError as exc:
            raise StoreUnavailable(f"reading the history log of {view!r} failed: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc
