"""Feature histories on Alibaba OSS as Delta Lake tables, ``oss://bucket/prefix/<view>``, through oss2.

Why this shape. delta-rs (``deltalake``) cannot speak the native OSS protocol (its object stores are S3, GCS, Azure,
HDFS, local), and OSS's S3-compatible endpoint would bypass oss2's credentials, signatures and
``x-oss-forbid-overwrite``. The choices were (a) a different table format, (b) hand-writing Delta's log, or (c) keep
delta-rs for everything that is the *table format* and supply only what Delta calls the *log store*: putting the
next log entry if it is absent, which is exactly what ``x-oss-forbid-overwrite: true`` does. This module is (c):

- Reading: the table's log objects (``_delta_log/NNN.json`` and ``NNN.checkpoint.parquet``; immutable once written)
  are mirrored into a local folder, fetching only new ones (listing after the last known entry) and only what the
  asked-for version needs (its newest checkpoint and the entries after it). ``deltalake`` opens the mirror: schema,
  table properties, the active files of any version come from delta-rs, not from code of ours.
- Writing one commit: a scratch table is built from the mirrored log at the version read (hard links, no data
  files), delta-rs commits on it locally (the same ``write_deltalake``/``alter`` calls as for S3, so add actions,
  statistics, schema merging and checkpoints are delta-rs'), then the new data files are uploaded and the new log
  entry is created on OSS with ``x-oss-forbid-overwrite``. A ``409 FileAlreadyExists`` means another writer took
  that version: the commit fails (``CommitFailedError``), its uploaded files are deleted, and ``DeltaOfflineStore``
  re-reads and retries with the same tie checks, so no update is lost and none is half-visible (files nobody's log
  names are invisible to readers). A checkpoint delta-rs wrote with the commit is uploaded after it (optional).
- Engines scan the Parquet files through ``oss_fs`` (a pyarrow filesystem over oss2), with sizes from the log.
- Erasure and retention (``oss_erase``): a DELETE's commit is built the same way, with the files it rewrites
  downloaded into the scratch table first (``_commit(fetch=)``); vacuum deletes the objects delta-rs' dry run lists.

The result is a standard Delta table that any Delta reader with OSS access (Spark on EMR, MaxCompute external
tables) can open.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from skewless.errors import NotFoundError, StoreUnavailable
from skewless.offline.base import HistoryFiles
from skewless.faults import kill_point
from skewless.offline.delta import ORPHAN_MIN_AGE_HOURS, DeltaOfflineStore

from . import oss_fs
from .oss_erase import OSSErasure
from .oss import OSSLocation, OSSSession

_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint\.parquet)$")
_MULTIPART_OVER = 32 * 1024 * 1024  # data files larger than this go up in parts (resumable upload)


class _Log:
    """What this process knows of one table's log on OSS: entry name -> etag, and the local mirror folder."""

    def __init__(self, folder: Path):
        self.folder, self.entries, self.lock = folder, {}, threading.Lock()

    def versions(self, kind: str) -> list[int]:
        return sorted(int(m.group(1)) for n in self.entries if (m := _LOG_ENTRY.match(n)) and m.group(2) == kind)


class OSSOfflineStore(OSSErasure, DeltaOfflineStore):
    """Erasure and retention: ``oss_erase``."""

    def __init__(self, url: str, options: dict | None = None):
        self.loc = OSSLocation.parse(url)
        self.oss = OSSSession(options, self.loc.bucket)
        super().__init__(self.loc.url, None)  # delta-rs only ever sees local folders: no storage options
        self._cache = Path(tempfile.mkdtemp(prefix="skewless-oss-delta-")).resolve()
        weakref.finalize(self, shutil.rmtree, self._cache, True)
        self._logs: dict[str, _Log] = {}
        self._logs_lock = threading.Lock()
        self.erase_reads: list[tuple[str, int, int]] = []

    # -- the log mirror --------------------------------------------------------------------------------------------
    def _log_prefix(self, view: str) -> str:
        return self.loc.key(view, "_delta_log") + "/"

    def _log(self, view: str) -> _Log:
        with self._logs_lock:
            if view not in self._logs:
                folder = self._cache / "tables" / view
                (folder / "_delta_log").mkdir(parents=True, exist_ok=True)
                self._logs[view] = _Log(folder)
            return self._logs[view]

    def _sync(self, view: str, version: int | None = None, into: Path | None = None, relist: bool = True) -> int | None:
        """Bring the mirror up to ``version`` (None: the newest); return that version, None for no table. ``into``:
        also link the entries that version needs into that scratch table's log. ``relist=False``: a ``version``
        listed already (just read: a commit on it) is not listed again."""
        log = self._log(view)
        with log.lock:
            if relist or version is None or f"{version:020d}.json" not in log.entries:
                self._list_new(view, log)
            commits = log.versions("json")
            if not commits:
                if version is not None:
                    raise NotFoundError(f"view {view!r} has no history (asked for version {version})")
                return None
            target = commits[-1] if version is None else version
            if target not in commits:
                raise NotFoundError(f"history of view {view!r} has no version {version}")
            for name in self._needed(log, target):
                path = log.folder / "_delta_log" / name
                if not path.exists():
                    data = self.oss.call(f"reading the history log of {view!r}",
                                         lambda n=name: self.oss.bucket.get_object(self._log_prefix(view) + n).read())
                    tmp = path.with_name(f".{name}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
                if into is not None:
                    os.link(path, into / "_delta_log" / name)
            return target

    def _list_new(self, view: str, log: _Log) -> None:
        """Learn the log entries written since the last listing. The newest known entry is listed again: when it is
        gone or changed, the table was dropped (and maybe re-created) meanwhile, and the mirror starts over. (A
        checkpoint uploaded after later commits were listed is missed: delta-rs then replays the commits instead.)"""
        prefix = self._log_prefix(view)
        commits = log.versions("json")
        after = f"{prefix}{commits[-2]:020d}.json" if len(commits) > 1 else ""
        listed = {k[len(prefix):]: etag for k, etag in self.oss.keys(prefix, start_after=after)
                  if _LOG_ENTRY.match(k[len(prefix):])}
        newest = f"{commits[-1]:020d}.json" if commits else None
        if newest is not None and listed.get(newest) != log.entries[newest]:
            shutil.rmtree(log.folder / "_delta_log")
            (log.folder / "_delta_log").mkdir()
            log.entries = {}
            if after:
                listed = {k[len(prefix):]: etag for k, etag in self.oss.keys(prefix) if _LOG_ENTRY.match(k[len(prefix):])}
        log.entries.update(listed)

    @staticmethod
    def _needed(log: _Log, version: int) -> list[str]:
        """The log entries delta-rs needs to open ``version``: its newest checkpoint and the commits from that one on
        (delta-rs finds the newest version by its commit file, so the checkpoint's own is needed too)."""
        checkpoints = [c for c in log.versions("checkpoint.parquet") if c <= version]
        start = checkpoints[-1] if checkpoints else 0
        return ([f"{checkpoints[-1]:020d}.checkpoint.parquet"] if checkpoints else []) + \
            [f"{v:020d}.json" for v in range(start, version + 1)]

    def _table(self, view: str, version: int | None = None) -> DeltaTable | None:
        target = self._sync(view, version)
        if target is None:
            return None
        try:
            return DeltaTable(str(self._log(view).folder), version=target)
        except DeltaError as exc:
            raise StoreUnavailable(f"cannot open history of {view!r} at {self._uri(view)}: {exc}",
                                   endpoint=self.oss.endpoint) from exc

    def version(self, view: str) -> int | None:
        return self._sync(view)

    def _log_entry(self, view: str, version: int) -> bytes | None:
        """From the mirror when it holds the entry (entries never change), else from OSS (statistics read commits
        older than the newest checkpoint, which the mirror does not fetch)."""
        import oss2

        name = f"{version:020d}.json"
        path = self._log(view).folder / "_delta_log" / name
        if path.exists():
            return path.read_bytes()

        def get() -> bytes | None:
            try:
                return self.oss.bucket.get_object(self._log_prefix(view) + name).read()
            except oss2.exceptions.NoSuchKey:
                return None

        return self.oss.call(f"reading the history log of {view!r}", get)

    # -- commits -----------------------------------------------------------------------------------------------------
    def _commit(self, view: str, before: DeltaTable | None, write: Callable, *, fetch: list[str] = (),
                entry: Callable[[bytes], bytes] | None = None, optional: bool = False) -> None:
        """``fetch``: data files (log paths) of ``before`` the write reads (a DELETE rewrites them), downloaded into
        the scratch table first and never uploaded again; ``entry``: rewrites the new log entry before it is
        published; ``optional``: the write may commit nothing (a DELETE that matched no row), then nothing is."""
        base = -1 if before is None else before.version()
        work = Path(tempfile.mkdtemp(prefix="commit-", dir=self._cache))
        try:
            (work / "_delta_log").mkdir()
            if before is not None:
                self._sync(view, base, into=work, relist=False)
            fetched: set[Path] = set()
            if fetch:
                with ThreadPoolExecutor(min(8, len(fetch))) as pool:  # downloads overlap: each is a round trip
                    fetched = set(pool.map(lambda path: self._fetch(view, path, work), fetch))
            write(DeltaTable(str(work)) if before is not None else str(work))
            log_entry = work / "_delta_log" / f"{base + 1:020d}.json"
            if optional and not log_entry.exists():
                return
            if entry is not None and log_entry.exists():
                log_entry.write_bytes(entry(log_entry.read_bytes()))
            self._publish(view, work, base + 1, fetched)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _fetch(self, view: str, path: str, work: Path) -> Path:
        local = work / unquote(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        self.oss.call(f"reading a file of the history of {view!r}", self.oss.bucket.get_object_to_file,
                      self.loc.key(view, unquote(path)), str(local))
        return local

    def _publish(self, view: str, work: Path, version: int, fetched: set[Path] = frozenset()) -> None:
        entry = work / "_delta_log" / f"{version:020d}.json"
        if not entry.exists():
            raise StoreUnavailable(f"delta-rs did not write version {version} of {view!r} (found "
                                   f"{sorted(os.listdir(work / '_delta_log'))})", endpoint=self.oss.endpoint)
        what = f"committing version {version} of the history of {view!r}"
        data_files = [p for p in work.rglob("*") if p.is_file() and "_delta_log" not in p.relative_to(work).parts
                      and not p.name.startswith(".") and p not in fetched]
        uploaded: list[str] = []
        try:
            for path in data_files:
                key = self.loc.key(view, path.relative_to(work).as_posix())
                self._upload(key, path, work, what)
                uploaded.append(key)
            if uploaded:
                kill_point("oss.before_log_entry")  # test hook: data files up, the commit not made
            created = self.oss.put_if_absent(self._log_prefix(view) + entry.name, entry.read_bytes(), what)
        except BaseException:
            self._forget(uploaded)
            raise
        if not created:
            self._forget(uploaded)
            raise CommitFailedError(f"version {version} of {view!r} was committed by another writer first")
        log = self._log(view)
        with log.lock:  # ours now: the mirror needs no download of it
            if not (log.folder / "_delta_log" / entry.name).exists():
                os.link(entry, log.folder / "_delta_log" / entry.name)
        checkpoint = work / "_delta_log" / f"{version:020d}.checkpoint.parquet"
        if checkpoint.exists():  # optional for readers: a failure here leaves a table that is merely slower to open
            try:
                self.oss.call(what, self.oss.bucket.put_object_from_file,
                              self._log_prefix(view) + checkpoint.name, str(checkpoint))
                self.oss.call(what, self.oss.bucket.put_object_from_file, self._log_prefix(view) + "_last_checkpoint",
                              str(work / "_delta_log" / "_last_checkpoint"))
            except Exception:  # noqa: BLE001 - see above
                pass

    def _upload(self, key: str, path: Path, work: Path, what: str) -> None:
        import oss2

        if path.stat().st_size <= _MULTIPART_OVER:
            self.oss.call(what, self.oss.bucket.put_object_from_file, key, str(path))
        else:  # resumable: a retry continues from the parts already sent (progress kept in the scratch folder)
            self.oss.call(what, oss2.resumable_upload, self.oss.bucket, key, str(path),
                          store=oss2.ResumableStore(root=str(work / ".uploads")), multipart_threshold=_MULTIPART_OVER,
                          part_size=16 * 1024 * 1024, num_threads=2)

    def _forget(self, keys: list[str]) -> None:
        """Best effort: files of a commit that did not happen are invisible anyway (no log entry names them)."""
        if keys:
            try:
                self.oss.retrying(self.oss.bucket.batch_delete_objects, keys)
            except Exception:  # noqa: BLE001 - see above
                pass

    # -- reads -------------------------------------------------------------------------------------------------------
    def _files_of(self, view: str, dt: DeltaTable) -> HistoryFiles:
        files = super()._files_of(view, dt)
        adds = pa.table(dt.get_add_actions(flatten=True))
        paths = [f"{self.loc.bucket}/{self.loc.key(view, unquote(p))}" for p in adds.column("path").to_pylist()]
        sizes = dict(zip(paths, adds.column("size_bytes").to_pylist()))
        return replace(files, uris=[f"oss://{p}" for p in paths], storage_options=None,
                       filesystem=oss_fs.filesystem(self.oss, sizes))

    def clean_orphans(self, view: str, min_age_hours: int = ORPHAN_MIN_AGE_HOURS) -> list[str]:
        """Data objects no version's log names (a writer killed between uploading them and creating its log entry;
        ``_forget`` removes those of a commit that merely failed), older than ``min_age_hours``: compared with the
        newest version's files first (one listing), and only candidates left are checked against every version."""
        import oss2

        dt = self._table(view)
        if dt is None:  # no commit yet: the next writer's table, once it exists, gets swept
            return []
        prefix = self.loc.key(view) + "/"
        cutoff = time.time() - min_age_hours * 3600

        def listing():
            return [(o.key[len(prefix):], o.last_modified) for o in
                    oss2.ObjectIteratorV2(self.oss.bucket, prefix=prefix, max_keys=1000) if not o.is_prefix()]
        old = {name for name, modified in self.oss.call(f"listing the files of {view!r}", listing)
               if not name.startswith("_delta_log/") and modified <= cutoff}
        for version in range(dt.version(), -1, -1):
            if not old:
                return []
            files = dt if version == dt.version() else self._table(view, version)
            old -= {unquote(p) for p in pa.table(files.get_add_actions(flatten=True)).column("path").to_pylist()}
        gone = sorted(old)
        for i in range(0, len(gone), 1000):  # OSS deletes at most 1000 objects per request
            self.oss.call(f"deleting orphan files of {view!r}", self.oss.bucket.batch_delete_objects,
                          [prefix + name for name in gone[i:i + 1000]])
        return gone

    def drop(self, view: str) -> None:
        self.oss.delete_prefix(self.loc.key(view) + "/", f"dropping history of {view!r}")
        log = self._log(view)
        with log.lock:
            shutil.rmtree(log.folder / "_delta_log")
            (log.folder / "_delta_log").mkdir()
            log.entries = {}


def offline_from_url(url: str, repo_path: Path, options: dict) -> OSSOfflineStore:
    return OSSOfflineStore(url, options)
