"""Erasure and retention of Delta histories (``DeltaOfflineStore`` inherits this): row deletes by entity key,
vacuum, and the record of which versions are expired.

A delete is one Delta ``DELETE`` commit: the files holding matching rows are rewritten without them and the old
files only marked removed, so older versions still read the rows until ``vacuum`` deletes the files they alone
reference. Which versions a retention run or a purge made unreadable is recorded in the table's own properties
(``EXPIRED_BEFORE``, ``KEPT``), committed *before* the vacuum deletes anything: a reader asking for such a version
gets ``SnapshotExpired`` (``check_readable``) instead of a scan that fails half-way, or silently reads other files.

The vacuum's decision is delta-rs' taken on a replay of every commit, not on the newest checkpoint (which forgets
old removals), and the files it lists are deleted here, by the store's own client: see ``delta_purge``.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError
from pyarrow import fs as pafs

from .. import dtypes
from ..definitions import EVENT_TS
from ..errors import ConflictError, NotFoundError, StoreUnavailable, ValidationError
from . import delta_purge

FORGET_TAG = "skewless.forget"  # commit metadata of a delete made by forget / a retention run: its request id
EXPIRED_BEFORE, KEPT = "skewless.expiredBefore", "skewless.keptVersions"
_ATTEMPTS = 30
_SEARCH = 200  # newest commits searched for a tagged delete (a forget resumed soon after it was killed)


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
    # Files no version reads younger than this are left by ``_unread_files``: a writer's, not yet committed.
    unread_min_age_hours: float = delta_purge.MIN_AGE_HOURS
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
        """The files delta-rs' vacuum with ``options`` lists from every commit of the history (``_every_entry``),
        deleted; returns those deleted. When Delta's log cleanup removed commit entries: what delta-rs lists from
        ``dt`` as it opens it, and every Parquet file no readable version reads (``_unread_files``)."""
        work = self._every_entry(view)
        if work is not None:
            try:
                listed = DeltaTable(str(work)).vacuum(dry_run=True, **options)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return self._delete_files(view, sorted({unquote(p) for p in listed}))
        # a kept version whose entries are gone loads no more (delta-rs' vacuum would fail on it): nothing to keep
        kept = {v: t for v in options.get("keep_versions") or [] if (t := self._loaded(view, v)) is not None}
        listed = dt.vacuum(dry_run=True, **{**options, "keep_versions": sorted(kept) or None})
        unread = self._unread_files(view, dt, kept)
        return self._delete_files(view, sorted({unquote(p) for p in listed} | set(unread)))

    def _loaded(self, view: str, version: int) -> DeltaTable | None:
        try:
            return self._table(view, version)
        except NotFoundError:
            return None

    def _every_entry(self, view: str) -> Path | None:
        """A scratch table of every commit entry, no checkpoint (``delta_purge.replay``; the caller removes the
        folder); None when some entry is gone, or there is no table."""
        dt = self._table(view)
        return None if dt is None else delta_purge.replay(lambda v: self._log_entry(view, v), dt.version())

    def _unread_files(self, view: str, dt: DeltaTable, kept: dict[int, DeltaTable]) -> list[str]:
        """The Parquet files in the history's storage that no readable version reads, for a history whose older
        commit entries Delta's log cleanup removed (with them, the only record of what those commits removed).
        Readable: ``dt`` (the newest), the versions from the expiry record's oldest on — what they read is ``dt``'s
        files plus what each later commit removed, from the entries still there —, and the ``kept`` versions that
        still load (one whose entries are gone cannot be read by anyone: its files are not kept)."""
        oldest = (self.expiry(view) or (0, []))[0]
        read = delta_purge.paths_of(dt)
        for _version, data in delta_purge.entries(lambda v: self._log_entry(view, v),
                                                  range(max(oldest + 1, 1), dt.version() + 1)):
            if data is not None:  # (entries gone are the oldest ones: the versions they made are unreadable)
                read |= delta_purge.removed(data)
        for old in kept.values():
            read |= delta_purge.paths_of(old)
        return delta_purge.unreferenced(self._stored_files(view), read, min_age_hours=self.unread_min_age_hours)

    def _stored_files(self, view: str) -> dict[str, float]:
        """Every file in the history's storage: path relative to its folder -> modification time (epoch seconds)."""
        filesystem, base = pafs.FileSystem.from_uri(self._uri(view))
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return {i.path[len(base):].lstrip("/"): i.mtime.timestamp() for i in infos if i.type == pafs.FileType.File}

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
