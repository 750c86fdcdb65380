"""Feature histories as MaxCompute tables: ``maxcompute://<project>?endpoint=...``.

Layout (``<p>`` = the table prefix, default ``skewless_``):

* ``<p>h_<view>`` — the history: join keys, ``event_timestamp``, ``created_timestamp``, ``_skewless_batch``,
  ``_skewless_row`` and the features, partitioned by ``ds`` STRING (the event's UTC date, ``yyyymmdd``). Rows are
  uploaded through the table tunnel (Arrow), one upload session per date partition.
* ``<p>c_<view>__<version>`` — one commit table per version (zero-padded): the write batches committed up to and
  including that version, and each version's metadata (columns present, tie level) as JSON.

Why this shape: an ingest touches many date partitions and MaxCompute has no transaction across tunnel sessions,
so uploaded rows are invisible until a commit names their batch: every read filters the history on
``_skewless_batch IN (SELECT batch FROM <commit table of the snapshot>)``. The commit is ``CREATE TABLE ... AS
SELECT`` of the previous commit table plus the new batch: it fails when the table exists, so it is the
create-if-absent step that makes concurrent writers line up (the loser re-reads and commits the next version), and
every version stays readable as it was. An ingest interrupted before its commit leaves rows no snapshot names.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from skewless.definitions import EVENT_TS, WRITE_BATCH
from skewless.errors import ConflictError, EngineError, NotFoundError
from skewless.faults import kill_point
from skewless.offline.base import (FULL_TIES, NO_TIES, BatchAlreadyCommitted, CommittedBatch, HistoryFiles,
                                   HistoryStats, OfflineStore, TieCheck)

from .maxcompute_client import MC_TYPES, Client, Settings, arrow_of, bq, dtype_name_of
from .maxcompute_erase import NO_ROWS, MaxComputeErasure

_ATTEMPTS = 30
_DIGITS = 10
_UPLOADS = 4  # tunnel upload sessions in flight at once
_DIRECT_DAYS = 4  # above this many event dates in one ingest, rows go through a staging table


class MaxComputeOfflineStore(MaxComputeErasure, OfflineStore):
    supports_concurrent_writers = True  # commits are create-if-absent (CTAS)

    def __init__(self, settings: Settings, client: Client | None = None):
        self.settings = settings
        self.url = f"maxcompute://{settings.project}"
        self._client = client
        self._lock = threading.Lock()
        self._columns: dict[str, list[tuple[str, str]]] = {}  # view -> history table columns known to exist
        self._files: dict[tuple[str, int], HistoryFiles] = {}  # versions never change: cached
        self._record_cache: dict[tuple[str, int], list[dict]] = {}  # (the records up to a version: neither)

    @property
    def client(self) -> Client:
        with self._lock:  # connecting is lazy: a store object alone never touches the network
            if self._client is None:
                self._client = Client(self.settings)
            return self._client

    # -- names ----------------------------------------------------------------------------------------------
    def history_table(self, view: str) -> str:
        return f"{self.settings.table_prefix}h_{view}".lower()

    def _commit_prefix(self, view: str) -> str:
        return f"{self.settings.table_prefix}c_{view}__".lower()

    def commit_table(self, view: str, version: int) -> str:
        return f"{self._commit_prefix(view)}{version:0{_DIGITS}d}"

    def _uri(self, table: str) -> str:
        return f"maxcompute://{self.settings.project}/{table}"

    # -- reads ----------------------------------------------------------------------------------------------
    def version(self, view: str) -> int | None:
        pattern = re.compile(re.escape(self._commit_prefix(view)) + rf"(\d{{{_DIGITS}}})")
        found = [int(m.group(1)) for t in self.client.tables(self._commit_prefix(view)) if (m := pattern.fullmatch(t))]
        return max(found) if found else None

    def files(self, view: str, version: int | None) -> HistoryFiles:
        if version is None:
            return HistoryFiles(view, None, [], {})
        cached = self._files.get((view, version))
        if cached is not None:
            return cached
        table = self.commit_table(view, version)
        if not self.client.exists(table):
            raise NotFoundError(f"history of view {view!r} has no version {version}")
        rows = self._records(view, version)
        own = [r for r in rows if r["version"] == version]
        if len(own) != 1:
            raise EngineError(f"MaxCompute commit table {table} is damaged: {len(own)} records for its version")
        meta = json.loads(own[0]["meta"])
        files = HistoryFiles(view, version, [self._uri(self.history_table(view)), self._uri(table)],
                             {c: arrow_of(d) for c, d in meta["columns"].items()}, evolved=False,
                             tie_level=int(own[0]["tie_level"]), warehouse_client=self.client)
        self._files[(view, version)] = files
        return files

    # -- writes ---------------------------------------------------------------------------------------------
    def append(self, view: str, table: pa.Table, *, batch: int, tie_check: TieCheck | None = None,
               history_stats: HistoryStats | None = None, batch_id: str | None = None, once: bool = False) -> int:
        """Upload the rows (invisible: no commit names their batch yet), then commit them as the next version.
        ``history_stats`` is never called: this store records no key packing (its engine has no ASOF join).
        ``batch_id`` is recorded in the commit record's metadata; with ``once`` each commit attempt first checks
        the version it builds on (CTAS of the next version fails if another writer got there first)."""
        types = {c: dtype_name_of(table.schema.field(c).type) for c in table.column_names}
        start = self.version(view)  # erases recorded done by then cannot have touched our rows (``reconcile``)
        stored = self._ensure_history(view, types)
        self._upload(view, table, stored)
        kill_point("maxcompute.before_commit")  # test hook: rows uploaded, no commit names them yet
        for _ in range(_ATTEMPTS):
            prior_version = self.version(view)
            if prior_version is not None:  # an erase recorded since ``start``, or not done, may have raced the upload
                start = prior_version = self.reconcile(view, table, batch, start, prior_version, stored)
            if once and batch_id and prior_version is not None:
                found = self._committed(view, prior_version, batch_id)
                if found is not None:  # our uploaded rows stay invisible: no commit names their batch
                    raise BatchAlreadyCommitted(found)
            prior = self.files(view, prior_version) if prior_version is not None else None
            level = prior.tie_level if prior is not None else NO_TIES
            if level < FULL_TIES:  # the level only ever rises; unknown (no check) is the exact path
                level = max(level, FULL_TIES if tie_check is None else tie_check(table, prior))
            columns = {**({c: dtype_name_of(t) for c, t in prior.columns.items()} if prior else {}), **types}
            version = 0 if prior_version is None else prior_version + 1
            if self._commit(view, version, batch, level, columns, batch_id):
                return version
        raise ConflictError(f"append to history of {view!r}: {_ATTEMPTS} concurrent commits won first")

    def _ensure_history(self, view: str, types: dict[str, str]) -> list[tuple[str, str]]:
        """The history table exists and has every column of ``types`` (features added later: new columns); its
        columns in table order as (name, MaxCompute type)."""
        name, known = self.history_table(view), self._columns.get(view, [])
        if {c.lower() for c in types} <= {c.lower() for c, _ in known}:
            return known
        client = self.client
        cols = ", ".join(f"{bq(c)} {MC_TYPES[d]}" for c, d in types.items())
        client.execute(f"CREATE TABLE IF NOT EXISTS {bq(name)} ({cols}) PARTITIONED BY (ds STRING)",
                       f"create history table {name}")
        with client.errors(f"read the schema of {name}"):
            existing = [(c.name, str(c.type).upper()) for c in client.odps.get_table(name).table_schema.simple_columns]
        missing = [c for c in types if c.lower() not in {e.lower() for e, _ in existing}]
        if missing:
            added = ", ".join(f"{bq(c)} {MC_TYPES[types[c]]}" for c in missing)
            client.execute(f"ALTER TABLE {bq(name)} ADD COLUMNS ({added})", f"add columns to {name}")
        self._columns[view] = existing + [(c, MC_TYPES[types[c]]) for c in missing]
        return self._columns[view]

    def _upload(self, view: str, table: pa.Table, columns: list[tuple[str, str]]) -> None:
        """The rows into their event dates' partitions: one tunnel upload per date, or, for a batch spanning many
        dates (a backfill), one upload into a staging table and one INSERT with dynamic partitions."""
        ds = pc.strftime(table.column(EVENT_TS), format="%Y%m%d")
        hist = self.history_table(view)
        if len(pc.unique(ds)) > _DIRECT_DAYS:
            staging = self.client.temp_table([*columns, ("ds", "STRING")])
            try:
                self.client.upload(staging, table.append_column("ds", ds))
                select = ", ".join(bq(c) for c, _ in [*columns, ("ds", "")])
                self.client.execute(f"INSERT INTO TABLE {bq(hist)} PARTITION (ds) SELECT {select} FROM {bq(staging)}",
                                    f"insert into {hist}")
            finally:
                self.client.drop(staging)
            return
        order = pc.sort_indices(ds)
        ds, table = ds.take(order), table.take(order)
        parts, start = [], 0
        for day in pc.value_counts(ds).to_pylist():  # in first-appearance order, i.e. sorted
            parts.append((table.slice(start, day["counts"]), f"ds='{day['values']}'"))
            start += day["counts"]
        # Sessions are independent (nothing is visible before the commit anyway): a few at a time hide the latency.
        with ThreadPoolExecutor(max_workers=min(_UPLOADS, len(parts))) as pool:
            for _ in pool.map(lambda p: self.client.upload(hist, *p), parts):
                pass

    def _commit(self, view: str, version: int, batch: int, level: int, columns: dict[str, str],
                batch_id: str | None = None) -> bool:
        """Create the commit table of ``version``; False when another writer created it first."""
        return self._commit_record(view, version, batch, level, {"columns": columns,
                                                                 **({"id": batch_id} if batch_id else {})})

    def _commit_record(self, view: str, version: int, batch: int, level: int, record: dict) -> bool:
        """``_commit`` of any record: an append's, or an erase's (``maxcompute_erase``: batch -1, naming no rows).
        Every record carries its commit time (``at``, ms: ``version_times``)."""
        meta = json.dumps({**record, "at": int(time.time() * 1000)}, separators=(",", ":"))
        if "'" in meta or "\\" in meta:  # a quote in a column name is a bug; in a batch id, a refused id
            raise EngineError(f"unexpected quote or backslash in the column names or batch id of {view!r}")
        new = (f"SELECT CAST({int(batch)} AS BIGINT) AS {bq('batch')}, CAST({version} AS BIGINT) AS {bq('version')}, "
               f"CAST({int(level)} AS BIGINT) AS {bq('tie_level')}, '{meta}' AS {bq('meta')}")
        if version:
            new = (f"SELECT {bq('batch')}, {bq('version')}, {bq('tie_level')}, {bq('meta')} "
                   f"FROM {bq(self.commit_table(view, version - 1))} UNION ALL {new}")
        try:
            self.client.execute(f"CREATE TABLE {bq(self.commit_table(view, version))} AS {new}",
                                f"commit version {version} of {view!r}")
        except EngineError as exc:
            if "already exist" in str(exc).lower() or "0130211" in str(exc):
                return False
            raise
        return True

    def _records(self, view: str, version: int) -> list[dict]:
        """The commit records (batch, version, tie_level, meta) of every version up to ``version``."""
        if (view, version) not in self._record_cache:
            self._record_cache[(view, version)] = self.client.download(self.commit_table(view, version)).to_pylist()
        return self._record_cache[(view, version)]

    def committed(self, view: str, batch_id: str) -> CommittedBatch | None:
        version = self.version(view)
        return None if version is None else self._committed(view, version, batch_id)

    def _committed(self, view: str, version: int, batch_id: str) -> CommittedBatch | None:
        records = sorted((r for r in self._records(view, version) if r["batch"] != NO_ROWS),  # (erase records)
                         key=lambda r: r["version"])
        for r in reversed(records):
            if json.loads(r["meta"]).get("id") == batch_id:
                return CommittedBatch(int(r["batch"]), int(r["version"]), r is records[-1])
        return None

    def drop(self, view: str) -> None:
        for table in [self.history_table(view), *self.client.tables(self._commit_prefix(view))]:
            self.client.execute(f"DROP TABLE IF EXISTS {bq(table)}", f"drop {table}")
        self._columns.pop(view, None)
        self._files = {k: v for k, v in self._files.items() if k[0] != view}
        self._record_cache = {k: v for k, v in self._record_cache.items() if k[0] != view}


def snapshot_filter(files: HistoryFiles) -> str:
    """The rows of ``files``' snapshot: those whose write batch its commit table names (DuckDB syntax: it is part
    of SQL that pit.py transpiles)."""
    commits = files.uris[1].rsplit("/", 1)[1]
    return f'"{WRITE_BATCH}" IN (SELECT "batch" FROM "{commits}")'
