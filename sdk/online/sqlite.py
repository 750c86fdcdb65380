"""Embedded online store: one SQLite file, one table per feature view.

Why SQLite: in the standard library, transactional, and a primary-key lookup costs microseconds in-process.
Newest-wins is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE (new order) > (stored order)`` statement, so a
late or replayed write can never replace a newer value, even with several writers (WAL + busy timeout).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .. import dtypes
from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from ..errors import StoreUnavailable
from .base import Key, OnlineStore, StagedWrite, from_us

_ORDER = ("__ev", "__cr", "__wb", "__wr")
_CHUNK = 400  # keys per SELECT (SQLite's bound-parameter limit is far above this)
_ROWS_PER_INSERT = 100  # rows per upsert statement (more gains nothing measurable)
_MAX_PARAMS = 999  # bound parameters per statement: SQLite's limit before 3.32, the lowest a user's build may have


def _integer_key(view: FeatureView) -> bool:
    """One join key of an integer dtype (its values are validated integers: the rowid can hold them)."""
    return len(view.join_keys) == 1 and next(iter(view.join_key_dtypes.values())) in (dtypes.Int64, dtypes.Int32)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(view: str) -> str:
    return _q(f"fv_{view}")


def _tiles_table(view: str) -> str:
    return _q(f"agg_{view}")


class SQLiteOnlineStore(OnlineStore):
    supports_per_field_ttl = False
    embedded = True
    supports_tiles = True

    def __init__(self, path: str):
        self.path = path
        self.url = f"sqlite:///{path}"
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("CREATE TABLE IF NOT EXISTS skewless_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        except (sqlite3.Error, OSError) as exc:  # OSError: a parent folder that is a file, or not writable
            raise StoreUnavailable(f"cannot open SQLite online store {path}: {exc}", endpoint=self.url) from exc
        self._lock = threading.RLock()
        self.stages_writes = path != ":memory:"  # another connection to ":memory:" would be another database
        self._columns: dict[str, set[str]] = {}
        self._plans: dict[tuple, tuple] = {}  # (view, features, column count) -> prepared SELECT parts

    # -- schema -------------------------------------------------------------------------------------------
    def _ensure_table(self, view: FeatureView) -> None:
        have = self._columns.get(view.name)
        want = set(view.feature_names)
        if have is not None and want <= have:
            return
        t = _table(view.name)
        keys = ", ".join(_q(k) for k in view.join_keys)
        order = "__ev INTEGER NOT NULL, __cr INTEGER NOT NULL, __wb INTEGER NOT NULL, __wr INTEGER NOT NULL"
        if _integer_key(view):
            # One integer key: the table's rowid (INTEGER PRIMARY KEY). An upsert then rewrites the row in place,
            # where a WITHOUT ROWID table (every other key) deletes and reinserts its entry in the key's b-tree:
            # much less CPU to upsert existing entities (an incremental ingest whose rows touch all of them; figures:
            # bench/results/figures_in_code.md).
            # Tables made before keep their layout; reads, upserts and deletes are the same SQL for both.
            self._con.execute(f"CREATE TABLE IF NOT EXISTS {t} ({keys} INTEGER PRIMARY KEY, {order})")
        else:
            self._con.execute(f"CREATE TABLE IF NOT EXISTS {t} ({keys}, {order}, PRIMARY KEY ({keys})) WITHOUT ROWID")
        cols = {r[1] for r in self._con.execute(f"PRAGMA table_info({t})")}
        for f in view.feature_names:
            if f not in cols:
                self._con.execute(f"ALTER TABLE {t} ADD COLUMN {_q(f)}")
                cols.add(f)
        self._columns[view.name] = cols

    # -- write --------------------------------------------------------------------------------------------
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        with self._lock:
            try:
                self._ensure_table(view)
                self._con.execute("BEGIN IMMEDIATE")
                self._upsert(self._con, view, rows)
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise StoreUnavailable(f"write to {self.url} failed: {exc}", endpoint=self.url) from exc
        return rows.num_rows

    def _upsert(self, con: sqlite3.Connection, view: FeatureView, rows: pa.Table) -> int:
        """The newest-wins upserts of ``rows``, in ``con``'s open transaction."""
        feats = view.feature_names
        cols = list(view.join_keys) + list(_ORDER) + feats
        sources = list(view.join_keys) + [EVENT_TS, CREATED_TS, WRITE_BATCH, WRITE_ROW] + feats
        # An order column holding one value in every row (an ingest's write batch always; its created time when
        # ingest filled it in) is bound once per statement, not once per row: a quarter fewer values converted,
        # copied and bound for a plain three-feature view.
        nk = len(view.join_keys)
        const = tuple(nk <= i < nk + len(_ORDER) and _constant(rows.column(src)) for i, src in enumerate(sources))
        data = [_to_sql_values(rows.column(src).slice(0, 1) if k else rows.column(src))
                for src, k in zip(sources, const)]
        head = [d[0] for d, k in zip(data, const) if k]
        data = [d for d, k in zip(data, const) if not k]
        n = rows.num_rows
        per = max(1, min(_ROWS_PER_INSERT, (_MAX_PARAMS - len(head)) // max(1, len(data))))
        full = n - n % per
        # Rows go in statements of ``per`` rows each (multi-row VALUES, applied in order: the same as one statement
        # per row), which saves SQLite's per-statement work and the binding loop's per-row overhead: ~30% of a
        # 100k-row upsert, the bulk of a small incremental ingest's cost. The parameters are numbered column by
        # column, so a statement's are slices of the columns, never a tuple per row.
        if full:
            con.executemany(self._upsert_sql(view, cols, per, const),
                            (_params(head, data, i, i + per) for i in range(0, full, per)))
        if n > full:
            con.execute(self._upsert_sql(view, cols, n - full, const), _params(head, data, full, n))
        return n

    def stage_write(self, view: FeatureView, tables: Callable[[], Iterable[pa.Table]],
                    meta: Mapping[str, str | None] | None = None) -> StagedWrite:
        """The upserts run now, in a thread, in a transaction of a connection of their own (``BEGIN IMMEDIATE``:
        the write lock is held until ``commit()`` or ``abort()``; other writers wait, readers read the committed
        state); ``commit()`` commits it, ``meta`` included. A killed process leaves an uncommitted transaction:
        SQLite discards it."""
        if not self.stages_writes:
            return super().stage_write(view, tables, meta)
        with self._lock:
            try:
                self._ensure_table(view)  # schema changes first, committed on the store's own connection
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"write to {self.url} failed: {exc}", endpoint=self.url) from exc
        return _Staged(self, view, tables, dict(meta or {}))

    def _upsert_sql(self, view: FeatureView, cols: list[str], nrows: int, const: tuple[bool, ...]) -> str:
        """The newest-wins upsert of ``nrows`` rows of ``cols``: a row replaces the stored one only when its order
        (event, created, write batch, write row) is greater. Columns marked in ``const`` take one value for every
        row."""
        ck = (view.name, "upsert", tuple(cols), nrows, const)
        sql = self._plans.get(ck)
        if sql is None:
            keys = ", ".join(_q(k) for k in view.join_keys)
            sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in cols[len(view.join_keys):])
            newer = f"({', '.join('excluded.' + c for c in _ORDER)}) > ({', '.join(_ORDER)})"
            # The constant columns' values are parameters 1..m; then row r's value of the j-th other column is
            # parameter m + j * nrows + r + 1 (see _params).
            m = sum(const)
            const_no = {i: sum(const[:i]) + 1 for i, k in enumerate(const) if k}
            var_no = {i: n for n, i in enumerate(i for i, k in enumerate(const) if not k)}

            def param(c: int, r: int) -> str:
                return f"?{const_no[c]}" if c in const_no else f"?{m + var_no[c] * nrows + r + 1}"
            values = ", ".join("(" + ", ".join(param(c, r) for c in range(len(cols))) + ")" for r in range(nrows))
            sql = self._plans[ck] = (f"INSERT INTO {_table(view.name)} ({', '.join(_q(c) for c in cols)}) "
                                     f"VALUES {values} ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {newer}")
        return sql

    # -- read ---------------------------------------------------------------------------------------------
    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        out = []
        with self._lock:
            self._con.execute("BEGIN")  # one consistent snapshot across every view of the batch
            try:
                for view, feats, keys in requests:
                    out.append(self._read_view(view, feats, keys))
            finally:
                self._con.execute("COMMIT")
        return out

    def _read_view(self, view: FeatureView, feats: list[str], keys: list[Key]):
        have = self._columns.get(view.name)
        if have is None or not set(feats) <= have:
            # (re)read the table's columns: another writer may have created it or added features since.
            have = {r[1] for r in self._con.execute(f"PRAGMA table_info({_table(view.name)})")}
            if not have:
                return [None] * len(keys)
            self._columns[view.name] = have
        nk = len(view.join_keys)
        ck = (view.name, tuple(feats), len(have))
        plan = self._plans.get(ck)
        if plan is None:
            by_name = {f.name: f for f in view.features}
            decoders = [_decoder(by_name[f].dtype) for f in feats]
            # A feature added after the last write has no column yet: it reads as null (never as SQLite's
            # "unknown double-quoted identifier is a string" fallback).
            cols = ", ".join([_q(k) for k in view.join_keys] + ["__ev"]
                             + [_q(f) if f in have else "NULL" for f in feats])
            keys_sql = ", ".join(_q(k) for k in view.join_keys)
            plan = self._plans[ck] = (f"SELECT {cols} FROM {_table(view.name)} WHERE ", keys_sql, decoders,
                                      all(d is None for d in decoders))
        head, keys_sql, decoders, plain = plan
        found: dict = {}
        wanted = [k for k in dict.fromkeys(keys) if None not in k]
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            if nk == 1:
                where = f"{keys_sql} IN ({', '.join('?' * len(chunk))})"
                params: list = [k[0] for k in chunk]
            else:
                tuple_ph = "(" + ", ".join("?" * nk) + ")"
                where = f"({keys_sql}) IN (VALUES {', '.join([tuple_ph] * len(chunk))})"
                params = [v for k in chunk for v in k]
            for r in self._con.execute(head + where, params):
                vals = list(r[nk + 1:]) if plain else [v if d is None else d(v) for d, v in zip(decoders, r[nk + 1:])]
                found[r[0] if nk == 1 else tuple(r[:nk])] = (r[nk], vals)
        if nk == 1:
            return [found.get(k[0]) for k in keys]
        return [found.get(k) for k in keys]

    # -- aggregation tiles: one row per (entity, level, tile), the partial's version beside it ----------------------
    def _ensure_tiles(self, view: FeatureView) -> None:
        keys = ", ".join(_q(k) for k in view.join_keys)
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {_tiles_table(view.name)} ({keys}, __lv INTEGER NOT NULL, "
                          f"__tile INTEGER NOT NULL, __ver INTEGER NOT NULL, __st BLOB, "
                          f"PRIMARY KEY ({keys}, __lv, __tile)) WITHOUT ROWID")

    def write_tiles(self, view: FeatureView, tiles, version: int) -> int:
        if not tiles:
            return 0
        keys = ", ".join(_q(k) for k in view.join_keys)
        cols = f"{keys}, __lv, __tile, __ver, __st"
        n = len(view.join_keys) + 4
        # An empty tile stays as a NULL state with its version (a tombstone): an older writer cannot bring it back.
        sql = (f"INSERT INTO {_tiles_table(view.name)} ({cols}) VALUES ({', '.join('?' * n)}) "
               f"ON CONFLICT ({keys}, __lv, __tile) DO UPDATE SET __ver = excluded.__ver, __st = excluded.__st "
               f"WHERE excluded.__ver >= __ver")
        with self._lock:
            try:
                self._ensure_tiles(view)
                self._con.execute("BEGIN IMMEDIATE")
                self._con.executemany(sql, [(*key, lv, t, version, st) for key, lv, t, st in tiles])
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise StoreUnavailable(f"write to {self.url} failed: {exc}", endpoint=self.url) from exc
        return len(tiles)

    def _tiles_sql(self, view: FeatureView, nkeys: int, ntiles: int) -> str:
        ck = ("tiles", view.name, tuple(view.join_keys), nkeys, ntiles)
        sql = self._plans.get(ck)
        if sql is None:
            nk = len(view.join_keys)
            kph = "(" + ", ".join("?" * nk) + ")"
            # keys x tiles as the outer loops (CROSS JOIN keeps SQLite's join order): one primary-key seek per
            # (entity, tile), never a scan of the entity's other tiles
            on = " AND ".join(f"t.{_q(k)} = k.c{j}" for j, k in enumerate(view.join_keys))
            sql = self._plans[ck] = (
                f"WITH k({', '.join(f'c{j}' for j in range(nk))}) AS (VALUES {', '.join([kph] * nkeys)}), "
                f"w(lv, tile) AS (VALUES {', '.join(['(?, ?)'] * ntiles)}) "
                f"SELECT {', '.join('t.' + _q(k) for k in view.join_keys)}, t.__lv, t.__tile, t.__st "
                f"FROM k CROSS JOIN w CROSS JOIN {_tiles_table(view.name)} AS t "
                f"WHERE {on} AND t.__lv = w.lv AND t.__tile = w.tile AND t.__st IS NOT NULL")
        return sql

    def read_tiles(self, view: FeatureView, keys, tiles):
        out: list[dict] = [{} for _ in keys]
        wanted = [k for k in dict.fromkeys(keys) if None not in k]
        if not wanted or not tiles:
            return out
        nk = len(view.join_keys)
        tile_params = [v for t in tiles for v in t]
        found: dict = {}
        step = max(1, _CHUNK // nk)
        with self._lock:
            try:
                for i in range(0, len(wanted), step):
                    chunk = wanted[i:i + step]
                    sql = self._tiles_sql(view, len(chunk), len(tiles))
                    for r in self._con.execute(sql, [v for k in chunk for v in k] + tile_params):
                        found.setdefault(tuple(r[:nk]), {})[(r[nk], r[nk + 1])] = r[nk + 2]
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return out
                raise StoreUnavailable(f"cannot read SQLite online store {self.path}: {exc}",
                                       endpoint=self.url) from exc
        return [found.get(k, {}) for k in keys]

    # -- bookkeeping --------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            r = self._con.execute("SELECT v FROM skewless_meta WHERE k = ?", (key,)).fetchone()
        return r[0] if r else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._lock:
            _set_meta(self._con, key, value)

    def list_meta(self, prefix: str) -> dict[str, str]:
        with self._lock:
            rows = self._con.execute("SELECT k, v FROM skewless_meta WHERE substr(k, 1, ?) = ?",
                                     (len(prefix), prefix)).fetchall()
        return dict(rows)

    def holds_rows(self, view: FeatureView) -> bool:
        try:
            with self._lock:
                # an aggregated view (it has ``aggregations``) keeps tiles, not rows; a tombstone is no row
                sql = (f"SELECT 1 FROM {_tiles_table(view.name)} WHERE __st IS NOT NULL LIMIT 1"
                       if hasattr(view, "aggregations") else f"SELECT 1 FROM {_table(view.name)} LIMIT 1")
                return self._con.execute(sql).fetchone() is not None
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return False
            raise StoreUnavailable(f"cannot read SQLite online store {self.path}: {exc}", endpoint=self.url) from exc

    def delete_entities(self, view: FeatureView, key_columns, keys) -> int:
        wanted = [tuple(k) for k in dict.fromkeys(tuple(k) for k in keys) if None not in k]
        if not wanted:
            return 0
        cols = ", ".join(_q(c) for c in key_columns)
        step = max(1, _CHUNK // len(key_columns))
        gone = 0
        with self._lock:
            try:
                self._con.execute("BEGIN IMMEDIATE")
                for table in (_table(view.name), _tiles_table(view.name)):
                    if not self._con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                             (table[1:-1].replace('""', '"'),)).fetchone():
                        continue
                    for i in range(0, len(wanted), step):
                        chunk = wanted[i:i + step]
                        ph = ", ".join(["(" + ", ".join("?" * len(key_columns)) + ")"] * len(chunk))
                        params = [v for k in chunk for v in k]
                        where = f"WHERE ({cols}) IN (VALUES {ph})"
                        if table == _tiles_table(view.name):  # an entity's tiles (many rows) count once
                            gone += len(self._con.execute(f"SELECT DISTINCT {cols} FROM {table} {where}",
                                                          params).fetchall())
                            self._con.execute(f"DELETE FROM {table} {where}", params)
                        else:
                            gone += self._con.execute(f"DELETE FROM {table} {where}", params).rowcount
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise StoreUnavailable(f"delete in {self.url} failed: {exc}", endpoint=self.url) from exc
        return gone

    def drop_view(self, view: str) -> None:
        with self._lock:
            self._con.execute(f"DROP TABLE IF EXISTS {_table(view)}")
            self._con.execute(f"DROP TABLE IF EXISTS {_tiles_table(view)}")
            self._columns.pop(view, None)
            self._plans = {k: v for k, v in self._plans.items() if k[0] != view}

    def close(self) -> None:
        self._con.close()


class _Staged(StagedWrite):
    """``SQLiteOnlineStore.stage_write``'s transaction and the thread that writes it.

    Its commit does not checkpoint the WAL: an incremental ingest's push rewrites every page of a view whose entities
    all changed (100k rows: ~1,600 pages), so SQLite's automatic checkpoint at that commit (past 1,000 pages) copied
    them into the database file and synced it twice, in the ingest's wall time after its rows were committed and
    visible (figures: bench/results/figures_in_code.md). The checkpoint runs instead in a thread of its own right
    after the commit (SQLite's documented alternative to automatic checkpoints), on the staging connection, then
    closed. It is a PASSIVE checkpoint: it never blocks readers or writers; one that finds another checkpoint running
    leaves the frames to it or to the next automatic one. A process killed during it leaves a WAL that SQLite replays
    at the next open, as after any crash: the committed transaction is in the WAL either way."""

    def __init__(self, store: SQLiteOnlineStore, view: FeatureView, tables: Callable[[], Iterable[pa.Table]],
                 meta: dict[str, str | None]):
        self._store, self._rows, self._error = store, 0, None
        try:
            self._con = sqlite3.connect(store.path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite online store {store.path}: {exc}", endpoint=store.url) from exc
        self._thread = threading.Thread(target=self._run, args=(view, tables, meta), name="skewless-sqlite-stage",
                                        daemon=True)
        self._thread.start()

    def _run(self, view: FeatureView, tables: Callable[[], Iterable[pa.Table]], meta: dict[str, str | None]) -> None:
        try:
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA wal_autocheckpoint=0")  # checkpointed after the commit, in a thread (above)
            self._con.execute("BEGIN IMMEDIATE")
            it = tables()
            try:
                for t in it:
                    if t.num_rows:
                        self._rows += self._store._upsert(self._con, view, t)
            finally:
                getattr(it, "close", lambda: None)()  # a generator's own clean-up (an engine session) now
            for k, v in meta.items():
                _set_meta(self._con, k, v)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by commit()
            self._error = exc

    def commit(self) -> int:
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            self._con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._close()
            raise StoreUnavailable(f"write to {self._store.url} failed: {exc}", endpoint=self._store.url) from exc
        except BaseException:
            self._close()
            raise
        threading.Thread(target=self._checkpoint, name="skewless-sqlite-checkpoint", daemon=True).start()
        return self._rows

    def _checkpoint(self) -> None:
        try:
            self._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # best effort: the frames stay in the WAL (readable) until a later checkpoint copies them
        finally:
            self._con.close()

    def abort(self) -> None:
        self._thread.join()
        self._close()

    def _close(self) -> None:
        try:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
        finally:
            self._con.close()


def _set_meta(con: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        con.execute("DELETE FROM skewless_meta WHERE k = ?", (key,))
    else:
        con.execute("INSERT INTO skewless_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    (key, value))


def _params(head: list, columns: list[list], start: int, stop: int) -> list:
    """The parameters of rows [start, stop) for an upsert statement of ``_upsert_sql``: the constant columns' values
    (``head``), then the other columns' values column after column."""
    out = list(head)
    for col in columns:
        out += col[start:stop]
    return out


def _constant(col: pa.ChunkedArray) -> bool:
    """Whether an integer or timestamp column holds one non-null value in every row (min == max, no nulls)."""
    if col.null_count or len(col) == 0 or not (pa.types.is_integer(col.type) or pa.types.is_timestamp(col.type)):
        return False
    lo_hi = pc.min_max(col)
    return lo_hi["min"] == lo_hi["max"]


def _to_sql_values(col: pa.ChunkedArray) -> list:
    """Arrow column -> Python values SQLite stores natively (timestamps as epoch microseconds)."""
    if pa.types.is_timestamp(col.type):
        col = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    if col.null_count == 0 and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return col.to_numpy().tolist()  # the same Python ints and floats as to_pylist, built in C (a push's cost)
    if pa.types.is_boolean(col.type):
        return pc.cast(col, pa.int8()).to_pylist()
    return col.to_pylist()


def _decoder(dtype):
    """How to turn a stored SQLite value back into the dtype's Python value (None: it already is one)."""
    if dtype is dtypes.UnixTimestamp:
        return lambda v: None if v is None else from_us(v)
    if dtype is dtypes.Bool:
        return lambda v: None if v is None else bool(v)
    return None


__all__ = ["SQLiteOnlineStore"]
