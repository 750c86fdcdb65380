"""Offline histories as Delta Lake tables (one per view) through ``deltalake``.

Why Delta: appends are atomic commits with optimistic concurrency, every commit is a readable version (so a
training set records the versions it read and can be rebuilt identically), and the files stay plain Parquet that
any engine scans. The same code serves local folders and object stores (``storage_options``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from typing import Callable
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from ..definitions import EVENT_TS
from ..errors import ConflictError, NotFoundError, StoreUnavailable
from ..faults import kill_point
from . import delta_stats
from .delta_erase import DeltaErasure
from .base import (FULL_TIES, NO_TIES, BatchAlreadyCommitted, CommittedBatch, HistoryFiles, HistoryStats,
                   OfflineStore, StreamProgress, TieCheck, Watermark, WatermarkMoved)
from .key_packing import KeyPacking, combine_stats, covers, envelope, packing_stats_arrow, recorded_packing


EVOLVED = "skewless.schemaEvolved"
TIE_LEVEL = "skewless.tieLevel"
# The BIGINT packing of (event, created) every row of the table fits (HistoryFiles.key_packing): "v1:<event min>:
# <event step>:<delay min>:<delay step>:<delay bits>", "none" when no packing fits (final: rows are never removed),
# "unknown" (or absent) when not recorded. Widened, rarely, in the same properties commit as the tie level.
KEY_PACKING = "skewless.keyPacking"
BATCH, BATCH_ID = "skewless.batch", "skewless.batchId"  # commit metadata of an append: write batch, identity
# A stream consumer's progress: a Delta app transaction (app id -> micro-batch seq, kept by every snapshot, so the
# conditional check needs no log scan) plus the positions in the same commit's metadata.
STREAM_CONSUMER, STREAM_SEQ, STREAM_POSITIONS = "skewless.stream", "skewless.streamSeq", "skewless.streamPositions"
_STREAM_PREFIX = "skewless.stream:"
_TXN_PREFIX = "skewless.batch:"  # Delta app transaction id of an ingest identity (its txn version: the write batch)
# Delta app transaction id of an incremental source's watermark (its txn version: the watermark value). Every
# snapshot keeps the newest txn per id, so the watermark is read from the table itself, never from a side file.
_WATERMARK_PREFIX = "skewless.watermark:"
_FIND_IN_COMMITS = 50  # newest commits searched for the version that committed an identified batch
_UNKNOWN = object()  # a KEY_PACKING value: nothing recorded, engines find the packing per query
_COMMIT_ATTEMPTS = 30
# A data file no version references is a killed writer's once older than this; a younger one may still be
# waiting for its commit (a large upload on a slow link). Deleted at the next append (``clean_orphans``).
ORPHAN_MIN_AGE_HOURS = 1
_SWEEP_SECONDS = 600.0


def _app_id(batch_id: str) -> str:
    return _TXN_PREFIX + batch_id


def _level(config: dict) -> int:
    """The recorded tie level; absent (version 0, or tables written without the check) means FULL_TIES."""
    value = config.get(TIE_LEVEL)
    return int(value) if value in ("0", "1", "2") else FULL_TIES


def _decode(value: str | None):
    """A KEY_PACKING property -> KeyPacking, None (no packing fits) or _UNKNOWN (absent or unreadable)."""
    if value == "none":
        return None
    parts = (value or "").split(":")
    if len(parts) != 6 or parts[0] != "v1":
        return _UNKNOWN
    try:
        e_min, e_step, d_min, d_step, bits = map(int, parts[1:])
    except ValueError:
        return _UNKNOWN
    p = recorded_packing(e_min, e_step, d_min, d_step, bits)
    return _UNKNOWN if p is None else p  # None: not what envelope() writes, never trusted


def _encode(p) -> str:
    if p is _UNKNOWN:
        return "unknown"
    if p is None:
        return "none"
    return f"v1:{p.event_min}:{p.event_step}:{p.delay_min}:{p.delay_step}:{p.delay_bits}"


def _packing_after(recorded, table: pa.Table, prior: HistoryFiles | None, history_stats: HistoryStats | None):
    """The key packing to record for the history once ``table`` is appended on top of ``prior`` (None: a new
    table), given the ``recorded`` one. Usually the recorded one: the new rows fit it (checked in memory, no scan).
    Otherwise it widens from exact stats of all rows (one scan of ``prior``: rare, the envelope leaves room); when
    those cannot be had, _UNKNOWN, so that no reader ever trusts a packing some rows do not fit."""
    if recorded is None:
        return None  # no packing fits rows already there, nor will with more rows
    new = packing_stats_arrow(table)
    if new is None:
        return _UNKNOWN
    if not new[0]:
        return recorded  # no rows: nothing to fit (and an empty table must not be recorded as "none")
    if isinstance(recorded, KeyPacking) and covers(recorded, new):
        return recorded
    past = (0, 0, None, None, None, None, *(None,) * 6) if prior is None else \
        history_stats(prior) if history_stats is not None else None
    return _UNKNOWN if past is None else envelope(combine_stats(new, past))


# Delta's per-file statistics hold timestamps at millisecond precision (truncated): a file's recorded event range
# is widened by this much before it is trusted to exclude a tie.
_STATS_SLACK_US = 1_000_000


def _tie_candidates(dt: DeltaTable | None, prior: HistoryFiles | None, table: pa.Table) -> HistoryFiles | None:
    """``prior`` narrowed to the files that may hold a row tying with one of ``table``'s. A tie needs equal event
    times, so a file whose event-time range (the min/max statistics its add action records in the log: no file is
    opened) lies wholly before the new rows' first event or after their last cannot hold one. Exact: a file without
    statistics, or a log whose paths cannot be matched to the files, stays whole. Stream micro-batches and
    incremental ingests arrive in time order, so this leaves the newest file or two instead of the whole history
    (whose every footer the check would otherwise open, once per append)."""
    if dt is None or prior is None or not prior.uris or table.num_rows == 0:
        return prior
    events = pc.cast(table.column(EVENT_TS), pa.int64())
    first, last = pc.min(events).as_py(), pc.max(events).as_py()
    try:
        adds = pa.table(dt.get_add_actions(flatten=True))
    except (DeltaError, OSError, TypeError, ValueError):
        return prior
    lo_col, hi_col = f"min.{EVENT_TS}", f"max.{EVENT_TS}"
    if lo_col not in adds.column_names or hi_col not in adds.column_names or adds.num_rows != len(prior.uris):
        return prior
    lo, hi = pc.cast(adds.column(lo_col), pa.int64()), pc.cast(adds.column(hi_col), pa.int64())
    apart = pc.or_(pc.less(hi, first - _STATS_SLACK_US), pc.greater(lo, last + _STATS_SLACK_US))
    keep = pc.invert(pc.fill_null(apart, False))  # no statistics: kept
    paths = adds.column("path").to_pylist()
    if any("/" in p for p in paths):  # partitioned or nested paths: not matched by name below, keep all
        return prior
    kept = {p for p, k in zip(paths, keep.to_pylist()) if k}
    uris = [u for u in prior.uris if unquote(u.rsplit("/", 1)[-1]) in kept]
    if len(kept) != len(uris):
        return prior
    return dataclasses.replace(prior, uris=uris)


class DeltaOfflineStore(DeltaErasure, OfflineStore):
    supports_watermarks = True
    supports_statistics = True

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.url = self.root
        self.storage_options = storage_options
        self._swept: dict[str, float] = {}  # view -> when this process last looked for orphan files (monotonic)

    def _uri(self, view: str) -> str:
        return f"{self.root}/{view}"

    def _table(self, view: str, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self._uri(view), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except OSError as exc:  # delta-rs reports an unreachable object store as OSError
            raise StoreUnavailable(f"cannot reach the history of {view!r} at {self._uri(view)}: "
                                   f"{str(exc).splitlines()[0]}", endpoint=self.root) from exc
        except DeltaError as exc:
            if version is not None and "version" in str(exc).lower():
                raise NotFoundError(f"history of view {view!r} has no version {version}") from exc
            raise StoreUnavailable(f"cannot open history of {view!r} at {self._uri(view)}: {exc}",
                                   endpoint=self.root) from exc

    def append(self, view: str, table: pa.Table, *, batch: int, tie_check: TieCheck | None = None,
               history_stats: HistoryStats | None = None, batch_id: str | None = None, once: bool = False,
               watermark: Watermark | None = None, progress: StreamProgress | None = None,
               statistics: Callable[[], str] | None = None) -> int:
        """One atomic append commit. Commits are conditional on the version read (no silent rebase): when
        another writer commits first, the checks below are redone against the new history and the append retried,
        so table properties always describe every file the commit makes visible. ``batch_id`` rides in the commit
        as a Delta app transaction (``txn``: app id -> our write batch), which every snapshot keeps; with ``once``
        it is checked on the very snapshot the commit is conditional on, so one id commits at most once."""
        meta = {BATCH: str(batch), **({BATCH_ID: batch_id} if batch_id else {})}
        txns = [Transaction(_app_id(batch_id), batch)] if batch_id else []
        if watermark is not None:
            txns.append(Transaction(_WATERMARK_PREFIX + watermark.name, watermark.value))
        if progress is not None:
            meta.update({STREAM_CONSUMER: progress.consumer, STREAM_SEQ: str(progress.seq),
                         STREAM_POSITIONS: json.dumps(progress.positions, sort_keys=True)})
            txns.append(Transaction(_STREAM_PREFIX + progress.consumer, progress.seq))
        own: list[str | None] = []  # this append's statistics, asked for once, just before its first commit

        def commit_for(before: DeltaTable | None, created: int) -> CommitProperties:
            if statistics is not None and not own:
                own.append(statistics())
                kill_point("offline.statistics_ready")  # test hook: statistics in hand, the commit not yet made
            extra, more = delta_stats.entries(before, created, own[0] if own else None,
                                              lambda v: self._commit_info(view, v))
            return CommitProperties(custom_metadata={**meta, **extra}, app_transactions=(txns + more) or None,
                                    max_commit_retries=0)

        self._sweep(view)
        for attempt in range(_COMMIT_ATTEMPTS):
            before = self._table(view)
            if once and before is not None and batch_id:
                found = self._committed(view, before, batch_id)
                if found is not None:
                    raise BatchAlreadyCommitted(found)
            if watermark is not None:  # checked on the very snapshot the commit is conditional on
                recorded = before.transaction_version(_WATERMARK_PREFIX + watermark.name) if before else None
                if recorded != watermark.prior:
                    raise WatermarkMoved(f"watermark {watermark.name!r} of {view!r} is {recorded}, not "
                                         f"{watermark.prior}")
            if progress is not None:  # checked on the very snapshot the commit is conditional on
                done = (before.transaction_version(_STREAM_PREFIX + progress.consumer) if before is not None
                        else None) or 0
                if done != progress.seq - 1:
                    raise ConflictError(f"stream consumer {progress.consumer!r} of {view!r} is at micro-batch "
                                        f"{done}, not {progress.seq - 1}: another consumer of that name committed")
            config = before.metadata().configuration if before is not None else {}
            props: dict[str, str] = {}
            # Files whose columns differ from the table's (a feature added or removed) make scans union by name.
            if before is not None and config.get(EVOLVED) != "true" and \
                    set(pa.schema(before.schema().to_arrow()).names) != set(table.column_names):
                props[EVOLVED] = "true"
            # Which ties exist among rows of one entity (see HistoryFiles.tie_level); the level only ever rises.
            # Unknown (no check given) is the highest level: engines then take the fully exact path.
            level = _level(config) if before is not None else NO_TIES  # a new table starts with no rows, no ties
            if level < FULL_TIES:
                prior = self._files_of(view, before) if before is not None else None
                new_level = max(level, FULL_TIES if tie_check is None else
                                tie_check(table, _tie_candidates(before, prior, table)))
                if new_level > level:
                    props[TIE_LEVEL] = str(new_level)
                # The key packing matters below FULL_TIES only, and the level never falls back: kept up to then.
                if new_level < FULL_TIES:
                    recorded = _decode(config.get(KEY_PACKING))
                    packed = _packing_after(recorded, table, prior, history_stats)
                    if packed != recorded:
                        props[KEY_PACKING] = _encode(packed)
            try:
                if before is None:
                    self._commit(view, None, lambda uri, c=commit_for(None, 0): write_deltalake(
                        uri, table, mode="error", storage_options=self.storage_options, commit_properties=c))
                    # Version 0 has no flag (read as "ties": exact); record what the check found for what follows.
                    # If another writer got in between, the flag stays absent, which is always safe.
                    # The key packing rides along (absent when the rows have full ties: then it is never used).
                    try:
                        self._commit(view, self._table(view, 0), lambda dt, p=props: dt.alter.set_table_properties(
                            {TIE_LEVEL: p.get(TIE_LEVEL, str(NO_TIES)),
                             **({KEY_PACKING: p[KEY_PACKING]} if KEY_PACKING in p else {})},
                            raise_if_not_exists=False, commit_properties=CommitProperties(max_commit_retries=0)))
                    except CommitFailedError:
                        pass
                    return 0
                # Properties first, then the append: a reader never sees new files without their flags.
                if props:
                    self._commit(view, before, lambda dt, p=props: dt.alter.set_table_properties(
                        p, raise_if_not_exists=False, commit_properties=CommitProperties(max_commit_retries=0)))
                    continue  # re-read: the append must be conditional on the version that carries the flags
                # The commit is conditional on ``before`` (no retries), so it creates exactly the next version.
                # (write_deltalake moves ``before`` itself to the version it commits: read the number first.)
                created = before.version() + 1
                commit = commit_for(before, created)
                self._commit(view, before, lambda dt, c=commit: write_deltalake(
                    dt, table, mode="append", schema_mode="merge", storage_options=self.storage_options,
                    commit_properties=c))
                return created
            except CommitFailedError:
                time.sleep(min(0.01 * 2 ** attempt, 0.5))  # another writer won: re-read and retry
            except (DeltaError, OSError) as exc:
                if before is None and "exists" in str(exc).lower():
                    continue  # another writer created the table first
                raise StoreUnavailable(f"append to history of {view!r} failed: {exc}", endpoint=self.root) from exc
        raise ConflictError(f"append to history of {view!r}: {_COMMIT_ATTEMPTS} concurrent commits won first")

    def statistics_records(self, view: str, version: int) -> list[str]:
        latest = self.version(view)
        if latest is None or not 0 <= version <= latest:
            raise NotFoundError(f"history of view {view!r} has no version {version}")
        return delta_stats.records(view, version, lambda v: self._commit_info(view, v))

    def _commit_info(self, view: str, version: int) -> dict | None:
        """The commitInfo of one version's log entry (None: the entry is gone). Read from the entry itself:
        delta-rs' ``history()`` of a table opened at an older version reads the newest commits instead."""
        return delta_stats.commit_info(self._log_entry(view, version))

    def _log_entry(self, view: str, version: int) -> bytes | None:
        """One log entry's bytes (None: gone); stores whose files pyarrow cannot reach by URL override this."""
        try:
            return delta_stats.read_entry(f"{self._uri(view)}/_delta_log/{version:020d}.json")
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the history log of {view!r}: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc

    def watermark(self, view: str, name: str) -> int | None:
        dt = self._table(view)
        return None if dt is None else dt.transaction_version(_WATERMARK_PREFIX + name)

    def compact(self, view: str, target_file_mb: int = 128) -> dict | None:
        """Delta OPTIMIZE (bin-packing compaction) as one commit: data files rewritten, rows and their write batch /
        row columns unchanged, so every answer is the same. The files it replaces are only marked removed: old
        versions still read them (``clean_orphans`` keeps every version's files), so snapshots stay reproducible."""
        dt = self._table(view)
        if dt is None:
            return {"files_removed": 0, "files_added": 0, "version": None}
        try:
            metrics = dt.optimize.compact(target_size=target_file_mb * 1024 * 1024,
                                          commit_properties=CommitProperties(custom_metadata={"skewless.compact": "1"}))
        except (DeltaError, OSError) as exc:
            raise StoreUnavailable(f"compacting the history of {view!r} failed: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc
        return {"files_removed": int(metrics.get("numFilesRemoved", 0)),
                "files_added": int(metrics.get("numFilesAdded", 0)), "version": dt.version()}

    def stream_progress(self, view: str, consumer: str) -> StreamProgress | None:
        """The consumer's seq from the snapshot's app transaction, its positions from that commit's metadata (the
        log searched newest first: a consumer commits often, so it is near the end)."""
        dt = self._table(view)
        seq = None if dt is None else dt.transaction_version(_STREAM_PREFIX + consumer)
        if not seq:
            return None
        for info in dt.history():  # newest first
            if info.get(STREAM_CONSUMER) == consumer and info.get(STREAM_SEQ) == str(seq):
                return StreamProgress(consumer, seq, json.loads(info[STREAM_POSITIONS]))
        raise NotFoundError(f"history of {view!r} records micro-batch {seq} of stream consumer {consumer!r} but its "
                            f"commit is no longer in the log (cleaned up): reset the consumer's positions")

    def committed(self, view: str, batch_id: str) -> CommittedBatch | None:
        dt = self._table(view)
        return None if dt is None else self._committed(view, dt, batch_id)

    def _committed(self, view: str, dt: DeltaTable, batch_id: str) -> CommittedBatch | None:
        batch = dt.transaction_version(_app_id(batch_id))
        if batch is None:
            return None
        # Which version committed it, and whether another ingest came after: the newest commits tell (an append
        # names its write batch in its commit info; property and vacuum commits name none).
        version, newest = dt.version(), None
        try:
            recent = dt.history(_FIND_IN_COMMITS)  # newest first
        except DeltaError:  # older log entries cleaned up (or not mirrored): the current version holds it
            recent = []
        for info in recent:
            if BATCH in info:
                newest = info[BATCH] == str(batch) if newest is None else newest
                if info[BATCH] == str(batch):
                    version = info["version"]
                    break
        return CommittedBatch(batch, version, bool(newest))

    def _sweep(self, view: str) -> None:
        """``clean_orphans`` at the first append of a view in this process, then every _SWEEP_SECONDS (each sweep
        lists the table; an orphan waits an hour anyway). Best effort: a failed sweep never fails the write."""
        now = time.monotonic()
        if now - self._swept.get(view, -_SWEEP_SECONDS) < _SWEEP_SECONDS:
            return
        self._swept[view] = now
        try:
            self.clean_orphans(view)
        except StoreUnavailable:
            pass

    def clean_orphans(self, view: str, min_age_hours: int = ORPHAN_MIN_AGE_HOURS) -> list[str]:
        """delta-rs' full vacuum, restricted to files no version references: its listing (untracked files and
        files removed longer ago than the age) is cheap and empty unless a writer died before its commit; only then
        is it redone keeping every version's files (an outside compaction's removed files stay readable by old
        versions) and run for real, which records VACUUM START/END commits."""
        dt = self._table(view)
        if dt is None:
            return []
        opts = {"retention_hours": min_age_hours, "enforce_retention_duration": False, "full": True}
        try:
            if not dt.vacuum(dry_run=True, **opts):
                return []
            opts["keep_versions"] = list(range(dt.version() + 1))
            if not dt.vacuum(dry_run=True, **opts):
                return []
            return dt.vacuum(dry_run=False, **opts)
        except (DeltaError, OSError) as exc:  # e.g. an old version's log entries already cleaned up: keep all
            raise StoreUnavailable(f"cleaning orphan files of {view!r} failed: {str(exc).splitlines()[0]}",
                                   endpoint=self.root) from exc

    def _commit(self, view: str, before: DeltaTable | None, write: Callable) -> None:
        """Run one delta-rs commit, ``write(target)``, on top of ``before`` (None: create the table). Raises
        CommitFailedError when another writer committed that version first. Stores whose object store delta-rs
        cannot reach override this to commit through their own log store."""
        write(before if before is not None else self._uri(view))

    def version(self, view: str) -> int | None:
        dt = self._table(view)
        return None if dt is None else dt.version()

    def files(self, view: str, version: int | None) -> HistoryFiles:
        if version is None:
            return HistoryFiles(view, None, [], {}, self.storage_options)
        dt = self._table(view, version)
        if dt is None:
            raise NotFoundError(f"view {view!r} has no history (asked for version {version})")
        return self._files_of(view, dt)

    def _files_of(self, view: str, dt: DeltaTable) -> HistoryFiles:
        schema = pa.schema(dt.schema().to_arrow())
        config = dt.metadata().configuration
        level = _level(config)
        # At FULL_TIES the packing is no longer kept up to date by ingests (nothing uses it): never hand it out.
        packed = _decode(config.get(KEY_PACKING)) if level < FULL_TIES else _UNKNOWN
        return HistoryFiles(view, dt.version(), list(dt.file_uris()), {f.name: f.type for f in schema},
                            self.storage_options, config.get(EVOLVED) == "true", level,
                            key_packing=None if packed is _UNKNOWN else packed, key_packing_known=packed is not _UNKNOWN)

    def drop(self, view: str) -> None:
        if "://" not in self.root or self.root.startswith("file://"):
            shutil.rmtree(Path(self._uri(view).removeprefix("file://")), ignore_errors=True)
        else:  # object stores: the adapter overrides this
            raise NotImplementedError(f"drop is not supported for {self.root}")
