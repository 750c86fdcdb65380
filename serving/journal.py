"""The prediction log's journals on local disk: one Arrow IPC file per flush, written before its commit and deleted
after it, so a flush interrupted anywhere (store down, SIGTERM past the drain timeout, kill -9) is committed exactly
once by whichever writer starts next.

Layout, under ``<spill dir>/<log view>/``::

    w<id>/.lock               the folder of one live writer (an exclusive flock held for the writer's life)
    w<id>/<batch>.arrow       a journal: the flush's rows in the history layout; batch id and base version in its
                              schema metadata
    w<id>/<batch>.arrow.tmp   a journal being written (a torn one is deleted: its rows never left memory)
    dead-letter.jsonl         rows the log cannot hold, one JSON object a line, with the error

A writer adopts the journals of every folder whose lock no process holds (a writer that died or stopped), so
several servers may share the directory. Whether an adopted journal's commit already landed is looked up in the
history itself (``committed``): each row carries its write batch id.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skewless.definitions import WRITE_BATCH
from skewless.errors import NotFoundError
from skewless.timeutil import new_batch_id

log = logging.getLogger("skewless.serving")
_BATCH, _BASE = b"skewless.journal.batch", b"skewless.journal.base"
SUFFIX = ".arrow"


@dataclass
class Entry:
    path: Path
    batch: int
    base: int | None  # a history version at or before the one this journal's commit gets (None: unknown)
    rows: int
    uncertain: bool  # its commit may have landed (an attempt failed, or adopted at start): look before appending


class Spool:
    def __init__(self, root: Path):
        self.root = root
        self.dir = root / f"w{new_batch_id()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.entries: list[Entry] = []
        self.rows = 0
        self._adopt()

    @property
    def dead_letter_path(self) -> Path:
        return self.root / "dead-letter.jsonl"

    def _adopt(self) -> None:
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            try:
                lock = open(d / ".lock", "a")
            except OSError:  # another writer adopted and removed it just now
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer's folder
                lock.close()
                continue
            for torn in d.glob(f"*{SUFFIX}.tmp"):
                log.warning("prediction log: deleting a journal torn while being written", extra={"path": str(torn)})
                torn.unlink()
            for f in sorted(d.glob(f"*{SUFFIX}")):
                os.replace(f, self.dir / f.name)
            _fsync_dir(self.dir)
            shutil.rmtree(d, ignore_errors=True)
            lock.close()
        for f in sorted(self.dir.glob(f"*{SUFFIX}"), key=lambda p: int(p.name[:-len(SUFFIX)])):
            with pa.ipc.open_file(pa.memory_map(str(f))) as reader:
                md = reader.schema.metadata or {}
                rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            base = md.get(_BASE, b"").decode()
            self._track(Entry(f, int(md[_BATCH]), int(base) if base else None, rows, uncertain=True))
        if self.entries:
            log.info("prediction log: journals from an earlier run to commit",
                     extra={"journals": len(self.entries), "rows": self.rows})

    def _track(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.rows += entry.rows

    def add(self, batch: int, table: pa.Table, base: int | None) -> None:
        """Journal ``table`` durably (temporary file, fsync, rename, fsync the folder)."""
        path = self.dir / f"{batch}{SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        md = dict(table.schema.metadata or {})
        md.update({_BATCH: str(batch).encode(), _BASE: b"" if base is None else str(base).encode()})
        table = table.replace_schema_metadata(md)
        with pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        self._track(Entry(path, batch, base, table.num_rows, uncertain=False))

    def read(self, entry: Entry) -> pa.Table:
        table = pa.ipc.open_file(pa.memory_map(str(entry.path))).read_all()
        md = {k: v for k, v in (table.schema.metadata or {}).items() if k not in (_BATCH, _BASE)}
        return table.replace_schema_metadata(md or None)

    def remove(self, entry: Entry) -> None:
        entry.path.unlink()
        self.entries.remove(entry)
        self.rows -= entry.rows

    def dead_letter(self, rows: list[tuple[dict, str]]) -> None:
        """Append (row, error) pairs to the dead-letter file, one JSON object a line, with one fsync."""
        at = datetime.now(timezone.utc).isoformat()
        lines = "".join(json.dumps({"at": at, "error": e, "row": r}, default=str) + "\n" for r, e in rows)
        with open(self.dead_letter_path, "a") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Release the folder: removed when empty, else left for the next writer to adopt."""
        if not self.entries:
            shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.close()


def committed(offline, view: str, batch: int, base: int | None) -> bool:
    """Whether a commit of write batch ``batch`` is in ``view``'s history after version ``base``: only the batch id
    column of the files added since is read. Not ``OfflineStore.committed`` (ingest's batch identities): those ride
    as Delta app transactions, which every snapshot keeps forever, and the log commits one flush a second."""
    version = offline.version(view)
    if version is None or (base is not None and version <= base):
        return False
    files = offline.files(view, version)
    before: set[str] = set()
    if base is not None and base >= 0:  # -1: before the history's first version
        try:
            before = set(offline.files(view, base).uris)
        except NotFoundError:  # that version was vacuumed away: look at every file
            pass
    for uri in files.uris:
        if uri in before:
            continue
        path = uri.removeprefix("file://") if files.filesystem is None else uri.split("://", 1)[-1]
        col = pq.read_table(path, columns=[WRITE_BATCH], filesystem=files.filesystem).column(WRITE_BATCH)
        if pc.any(pc.equal(col, pa.scalar(batch, pa.int64()))).as_py():
            return True
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
