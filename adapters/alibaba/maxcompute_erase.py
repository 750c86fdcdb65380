"""Erasure of MaxCompute histories (``MaxComputeOfflineStore`` inherits this): forget's deletes by entity key,
prediction-log retention's deletes by event time, the expiry behind ``SnapshotExpired``, and the guard that keeps an
ingest racing an erase from losing its rows or bringing erased ones back.

Every version of a MaxCompute history reads the one history table (filtered by the write batches its commit table
names), so rows deleted from it are gone from every version at once (``erases_in_place``): nothing is left to vacuum,
and a version before the erase no longer rebuilds as it was if it held a deleted row. So an erase is:

1. **recorded first**: a commit record of its own (a version naming no rows: batch -1) with its tag, the committed
   rows it deletes, the ``ds`` partitions holding matching rows, what it matches (SHA-256 of each key, or an event
   time bound) and the expiry: versions before it expire, but the ones the caller keeps (pinned versions that held
   none of the rows). A reader of an older version gets SnapshotExpired from then on, before any row changes;
2. each of those partitions rewritten: ``INSERT OVERWRITE ... PARTITION (ds=...) SELECT <columns> ... WHERE NOT
   COALESCE(<match>, FALSE)`` over every write batch, committed or not (an ingest's uploaded rows lose theirs too);
3. **done**: a second record. A re-run finds the tag: done, it returns the recorded count; only started (killed
   half-way), it rewrites the partitions again — idempotent — then records done.

The guard (``reconcile``, called by ``append``): an ingest notes the newest version before it uploads; when it
commits, an erase whose done record is newer (or missing) may have raced the upload: on MaxCompute a tunnel upload
committing into a partition being overwritten can be lost, and one landing after the rewrite brings matching rows
back. The ingest waits until the erase is done, then counts its own batch in the table: exactly its rows less the
ones the erase matches, it commits; anything else, it erases its own batch (a recorded erase too, so other racing
ingests see it) and uploads its rows again less the matching ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import pyarrow as pa
import pyarrow.compute as pc

from skewless import dtypes
from skewless.definitions import EVENT_TS, WRITE_BATCH
from skewless.errors import ConflictError, EngineError
from skewless.faults import kill_point
from skewless.offline.delta_erase import keys_predicate

from .maxcompute_client import bq, dtype_name_of, sq

_ATTEMPTS = 30
_WAIT_S = 120.0  # how long an ingest waits for an erase it raced to be done before giving up (nothing committed)
_POLL_S = 0.5
_DS = re.compile(r"\d{8}")
NO_ROWS = -1  # the batch of an erase's records: no history row has it


def key_hash(key) -> str:
    """The SHA-256 of one key (a tuple of plain values) an erase records: the guard matches rows with it."""
    return hashlib.sha256(json.dumps(list(key), separators=(",", ":")).encode()).hexdigest()


class MaxComputeErasure:
    """Mixed into ``MaxComputeOfflineStore`` (which provides the client, names, versions and commit records)."""

    supports_erasure = True
    erases_in_place = True
    # An erase matching no keys (an ingest's own batch, prediction-log rows by time) left unfinished this long —
    # its process killed — is finished by the ingest waiting on it: nobody else would (a forget is re-run by its
    # caller; an ingest's or a retention run's retry makes an erase of its own).
    stale_erase_seconds = 60.0

    # -- the OfflineStore erasure contract --------------------------------------------------------------------
    def delete_rows(self, view: str, key_dtypes: dict, keys: list[tuple], *, tag: str,
                    keep: list[int] = ()) -> tuple[int, int | None]:
        if not keys:
            return 0, None
        where = keys_predicate(key_dtypes, keys, name=bq, string=sq)
        return self._erase(view, tag, where, {"keys": list(key_dtypes), "hashes": sorted(map(key_hash, keys))},
                           keep=list(keep))

    def delete_before(self, view: str, before, *, tag: str) -> tuple[int, int | None]:
        match = {"before_us": int(before.timestamp() * 1_000_000)}  # instants are BIGINT µs (maxcompute_client)
        return self._erase(view, tag, _keyless_where(match), match, keep=[])

    def count_key_rows(self, view: str, version: int, key_dtypes: dict, keys: list[tuple]) -> int:
        if not keys:
            return 0
        where = keys_predicate(key_dtypes, keys, name=bq, string=sq)
        sql = (f"SELECT COUNT(*) AS n FROM {bq(self.history_table(view))} WHERE {bq(WRITE_BATCH)} IN "
               f"(SELECT {bq('batch')} FROM {bq(self.commit_table(view, version))}) AND ({where})")
        return self._ints(sql, f"count rows of keys in {view!r}", ["n"])[0][0]

    def vacuum(self, view: str, *, retention_hours: float, keep_versions: list[int]) -> list[str]:
        return []  # no files: an erase deletes the rows themselves, older versions hold no copies

    def expiry(self, view: str) -> tuple[int, list[int]] | None:
        newest = self.version(view)
        found = [m["expire"] for _r, m in self._metas(view, newest, "expire")] if newest is not None else []
        return (int(found[-1][0]), [int(v) for v in found[-1][1]]) if found else None

    def set_expiry(self, view: str, oldest: int, kept: list[int]) -> None:
        self._record(view, {"expire": [int(oldest), sorted({int(v) for v in kept})]})

    def version_times(self, view: str) -> list[tuple[int, int]]:
        newest = self.version(view)
        if newest is None:
            return []
        return sorted((int(r["version"]), int(m["at"])) for r, m in self._metas(view, newest, "at"))

    # -- the erase --------------------------------------------------------------------------------------------
    def _erase(self, view: str, tag: str, where: str, match: dict, *, keep: list[int] | None
               ) -> tuple[int, int | None]:
        """See the module docstring. ``keep``: versions to keep readable (None: expire nothing, the erase matches
        no committed row by construction)."""
        for _ in range(_ATTEMPTS):
            newest = self.version(view)
            if newest is None:
                return 0, None
            started = self._started(view, newest, tag)
            if started is not None:  # a re-run: finish it if it was killed half-way
                version, meta = started
                if not self._done(view, newest, tag):
                    self._rewrite(view, where, sorted(set(meta["parts"]) | set(self._parts(view, newest, where))))
                    self._record(view, {"erased": tag})
                return int(meta["rows"]), version
            parts = self._parts(view, newest, where)
            if not parts:
                return 0, None
            rows = sum(committed for _n, committed in parts.values())
            meta = {"erase": tag, "rows": rows, "parts": sorted(parts), "match": match}
            if rows and keep is not None:
                prior = self.expiry(view)
                kept = [v for v in keep if v < newest + 1 and (prior is None or v >= prior[0] or v in prior[1])]
                meta["expire"] = [newest + 1, sorted(set(kept))]
            if self._record(view, meta, only_as=newest + 1):
                break
        else:
            raise ConflictError(f"erase in the history of {view!r}: {_ATTEMPTS} concurrent commits won first")
        kill_point("maxcompute.erase_recorded")
        self._rewrite(view, where, sorted(parts))
        self._record(view, {"erased": tag})
        return rows, newest + 1

    def _parts(self, view: str, version: int, where: str) -> dict[str, tuple[int, int]]:
        """Per ``ds`` partition holding a row ``where`` matches: (rows, of which committed at ``version``)."""
        sql = (f"SELECT h.ds AS ds, COUNT(*) AS n, COUNT(c.{bq('_skewless_c')}) AS committed "
               f"FROM {bq(self.history_table(view))} h LEFT OUTER JOIN (SELECT DISTINCT {bq('batch')} AS "
               f"{bq('_skewless_c')} FROM {bq(self.commit_table(view, version))}) c "
               f"ON h.{bq(WRITE_BATCH)} = c.{bq('_skewless_c')} WHERE {where} GROUP BY h.ds")
        out = {}
        for ds, n, committed in self._rows(sql, f"find the rows to erase in {view!r}",
                                           [("ds", pa.string()), ("n", pa.int64()), ("committed", pa.int64())]):
            if not _DS.fullmatch(ds):
                raise EngineError(f"MaxCompute history of {view!r} has a partition ds={ds!r} skewless never writes")
            out[ds] = (int(n), int(committed))
        return out

    def _rewrite(self, view: str, where: str, parts: list[str]) -> None:
        """Each partition rewritten without the rows ``where`` matches (a NULL key matches nothing: kept)."""
        hist = self.history_table(view)
        with self.client.errors(f"read the schema of {hist}"):
            cols = [c.name for c in self.client.odps.get_table(hist).table_schema.simple_columns]
        select = ", ".join(bq(c) for c in cols)
        for ds in parts:
            self.client.execute(f"INSERT OVERWRITE TABLE {bq(hist)} PARTITION (ds='{ds}') SELECT {select} FROM "
                                f"{bq(hist)} WHERE ds = '{ds}' AND NOT COALESCE(({where}), FALSE)",
                                f"erase rows of {view!r} in partition ds={ds}")
            kill_point("maxcompute.erase_partition")

    def _record(self, view: str, record: dict, only_as: int | None = None) -> bool:
        """Commit ``record`` as the next version (its own version naming no rows); with ``only_as``, only as that
        version (False when another writer took it). Otherwise retried until it commits."""
        for _ in range(_ATTEMPTS):
            newest = self.version(view)
            version = newest + 1 if newest is not None else 0
            if only_as is not None and version != only_as:
                return False
            prior = self.files(view, newest) if newest is not None else None
            columns = {c: dtype_name_of(t) for c, t in prior.columns.items()} if prior is not None else {}
            level = prior.tie_level if prior is not None else 0
            if self._commit_record(view, version, NO_ROWS, level, {"columns": columns, **record}):
                return True
            if only_as is not None:
                return False
        raise ConflictError(f"recording an erase of {view!r}: {_ATTEMPTS} concurrent commits won first")

    # -- the records ------------------------------------------------------------------------------------------
    def _metas(self, view: str, version: int, *fields: str) -> list[tuple[dict, dict]]:
        """(record, parsed meta) of the records up to ``version`` having one of ``fields``, oldest first. (Every
        commit attempt of an ingest asks for the erase records: the text is searched before any JSON is parsed.)"""
        marks = [f'"{f}":' for f in fields]
        out = [(r, json.loads(r["meta"])) for r in sorted(self._records(view, version), key=lambda r: r["version"])
               if any(k in r["meta"] for k in marks)]
        return [(r, m) for r, m in out if any(f in m for f in fields)]

    def _started(self, view: str, version: int, tag: str) -> tuple[int, dict] | None:
        return next(((int(r["version"]), m) for r, m in self._metas(view, version, "erase")
                     if m.get("erase") == tag), None)

    def _done(self, view: str, version: int, tag: str) -> bool:
        return any(m.get("erased") == tag for _r, m in self._metas(view, version, "erased"))

    # -- the ingest guard -------------------------------------------------------------------------------------
    def reconcile(self, view: str, table: pa.Table, batch: int, start: int | None, newest: int,
                  stored: list[tuple[str, str]]) -> int:
        """Called by ``append`` before each commit attempt, ``start`` being the newest version before its upload
        (``newest`` the one it builds on): if an erase may have raced the upload, wait for it, check the batch's
        rows and, when they are not exactly the uploaded ones less the erased ones, erase the batch and upload it
        again less those. Returns the version up to which every erase is accounted for."""
        raced = self._raced(view, newest, start)
        if not raced:
            return newest
        deadline = time.monotonic() + _WAIT_S
        while pending := [tag for tag in raced if not self._done(view, newest, tag)]:
            for tag in pending:
                match, at = raced[tag]
                if "hashes" not in match and time.time() * 1000 - at > self.stale_erase_seconds * 1000:
                    self._erase(view, tag, _keyless_where(match), match, keep=None)  # (finds it: finishes it)
            if time.monotonic() > deadline:
                raise ConflictError(f"an erase of the history of {view!r} ({', '.join(pending)}) is in progress or "
                                    "was interrupted: nothing was ingested; finish it (re-run the forget) and ingest "
                                    "again")
            time.sleep(_POLL_S)
            newest = self.version(view)
            raced = self._raced(view, newest, start)  # (erases recorded meanwhile raced the upload as well)
        matches = [match for match, _at in raced.values()]
        erased = _mask(table, matches)
        expected = table.num_rows - (pc.sum(erased).as_py() or 0)
        survivors = _sql(table.filter(erased), matches)
        found = self._ints(f"SELECT COUNT(*) AS n, SUM(CASE WHEN {survivors} THEN 1 ELSE 0 END) AS m FROM "
                           f"{bq(self.history_table(view))} WHERE {bq(WRITE_BATCH)} = {int(batch)}", f"check ingest batch {batch} of {view!r}",
                           ["n", "m"])[0]
        if found[0] == expected and not found[1]:
            return newest
        # Rows lost to the overwrite, or erased rows uploaded after it: the batch again, cleanly. (A tag of its own
        # per attempt: should another erase race the upload again, the next attempt really rewrites.)
        match = {"batch": int(batch)}
        self._erase(view, f"ingest-{int(batch)}-{newest}", _keyless_where(match), match, keep=None)
        newest = self.version(view)
        self._upload(view, table.filter(pc.invert(erased)), stored)
        return newest

    def _raced(self, view: str, version: int, start: int | None) -> dict[str, tuple[dict, int]]:
        """tag -> (match, when it was recorded) of every erase not recorded done by version ``start`` (None: the
        history did not exist)."""
        metas = self._metas(view, version, "erase", "erased")
        done = {m["erased"]: int(r["version"]) for r, m in metas if "erased" in m}
        floor = -1 if start is None else start
        return {m["erase"]: (m["match"], int(m["at"])) for _r, m in metas
                if "erase" in m and done.get(m["erase"], floor + 1) > floor}

    # -- SQL results ------------------------------------------------------------------------------------------
    def _rows(self, sql: str, what: str, schema: list[tuple[str, pa.DataType]]) -> list[tuple]:
        instance = self.client.execute(sql, what)
        out = []
        for b in self.client.result(instance, what, pa.schema(schema)):
            out.extend(zip(*(c.to_pylist() for c in b.columns)))
        return out

    def _ints(self, sql: str, what: str, names: list[str]) -> list[tuple]:
        return [tuple(int(v or 0) for v in row) for row in self._rows(sql, what, [(n, pa.int64()) for n in names])]


def _keyless_where(match: dict) -> str:
    """The SQL of an erase that matches no keys: an ingest's own batch, or rows older than an event time."""
    if "batch" in match:
        return f"{bq(WRITE_BATCH)} = {int(match['batch'])}"
    return f"{bq(EVENT_TS)} < {int(match['before_us'])}"


def _mask(table: pa.Table, matches: list[dict]) -> pa.Array:
    """Which rows of an ingest's ``table`` the erases' ``matches`` delete."""
    out = pa.array([False] * table.num_rows)
    for m in matches:
        if "hashes" in m:
            hashes = set(m["hashes"])
            keys = zip(*(table.column(c).to_pylist() for c in m["keys"]))
            hit = pa.array([key_hash(k) in hashes for k in keys], pa.bool_())
        elif "before_us" in m:
            hit = pc.less(pc.cast(table.column(EVENT_TS), pa.int64()), m["before_us"])
        else:  # another ingest's own batch: never ours
            hit = pa.array([False] * table.num_rows)
        out = pc.or_(out, pc.fill_null(hit, False))
    return out


def _sql(rows: pa.Table, matches: list[dict]) -> str:
    """SQL matching the rows of ``rows`` (an ingest's rows the erases delete) the same way the erases did."""
    parts = []
    for m in matches:
        if "hashes" in m and rows.num_rows:
            cols = m["keys"]
            keys = list(dict.fromkeys(zip(*(rows.column(c).to_pylist() for c in cols))))
            dts = {c: dtypes.by_name(dtype_name_of(rows.schema.field(c).type)) for c in cols}
            parts.append(f"({keys_predicate(dts, keys, name=bq, string=sq)})")
        elif "before_us" in m:
            parts.append(f"{bq(EVENT_TS)} < {int(m['before_us'])}")
    return " OR ".join(parts) or "FALSE"
