"""The offline contracts: storage (append-only feature histories with atomic commits and readable snapshots) and
the engine that computes over them (training sets, materialization scans, tie checks)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from .key_packing import KeyPacking


NO_TIES, EVENT_TIES, FULL_TIES = 0, 1, 2


@dataclass(frozen=True)
class HistoryFiles:
    """What an engine needs to scan one view's history at one snapshot.

    ``version`` is None when the view has no history yet. ``columns`` are the columns present in the table
    (features added later are missing from older files and read as null)."""

    view: str
    version: int | None
    uris: list[str]
    columns: dict[str, pa.DataType]
    storage_options: dict[str, str] | None = None
    evolved: bool = True  # False when every file has every column (no schema growth): scans can skip unioning
    # How much of the ordering tuple (event, created, write order) can decide a winner, i.e. which ties exist
    # among rows of the same entity: NO_TIES (event time alone decides), EVENT_TIES (created breaks them),
    # FULL_TIES (the write order is needed too; also the value when unknown). Engines pick a cheaper join key.
    tie_level: int = 2
    # A pyarrow FileSystem for ``uris`` on an object store (None: local paths). Engines that cannot read the
    # store's URLs natively scan the files through it (DuckDB's S3 support is an extension it cannot fetch here).
    filesystem: "pafs.FileSystem | None" = None
    # A store whose histories are tables of a warehouse (MaxCompute) hands its connected client to the engine it
    # pairs with here (None for file histories). Its type belongs to that adapter, which the core never imports:
    # the paired engine checks it (``MaxComputeEngine.client_of``).
    warehouse_client: object | None = None
    # At tie level 1, how (event, created) packs into a BIGINT ASOF key (key_packing.KeyPacking), recorded at ingest so
    # retrieval needs no scan to find it; None: recorded as not fitting (the 128-bit key). Only meaningful when
    # ``key_packing_known``: otherwise nothing was recorded and engines find it from the rows themselves.
    key_packing: "KeyPacking | None" = None
    key_packing_known: bool = False


@dataclass(frozen=True)
class CommittedBatch:
    """An ingest batch already in a view's history, found by its identity (``append(..., batch_id=)``)."""

    batch: int  # its write batch number (the history's ``_skewless_batch`` of its rows)
    version: int  # a version holding it: the one that committed it when the store can tell, else a later one
    newest: bool  # no other identified batch was committed after it


class BatchAlreadyCommitted(Exception):
    """Raised by ``append(..., once=True)`` when its ``batch_id`` was committed first (by a concurrent writer);
    not an error for the caller: ``ingest`` reports the batch as already ingested."""

    def __init__(self, found: CommittedBatch):
        super().__init__(f"batch {found.batch} already committed in version {found.version}")
        self.found = found


@dataclass(frozen=True)
class StreamProgress:
    """How far a stream consumer got, committed atomically with the append of the records it read
    (``append(..., progress=)``): micro-batch ``seq`` (1, 2, ...) of ``consumer`` and, per shard, the position of the
    last record read (opaque strings, see skewless.streams.source)."""

    consumer: str
    seq: int
    positions: dict[str, str]


# ``tie_check(rows, prior)``: the tie level (HistoryFiles.tie_level) of rows about to be appended, among themselves
# and against the prior history (None: the view has none yet). The caller's engine computes it.
TieCheck = Callable[[pa.Table, "HistoryFiles | None"], int]
# ``history_stats(prior)``: the ``key_packing.packing_stats_sql`` row of a history snapshot (None: the engine cannot
# tell). The caller's engine computes it.
HistoryStats = Callable[["HistoryFiles"], "tuple | None"]


@dataclass(frozen=True)
class Watermark:
    """An incremental source ingest's progress, committed atomically with its append (``append(..., watermark=)``):
    the newest ``value`` (an integer: UTC microseconds for timestamps) of source column ``name`` now in the history,
    conditional on the history still recording ``prior`` (None: nothing recorded yet)."""

    name: str
    value: int
    prior: int | None


class WatermarkMoved(Exception):
    """Raised by ``append(..., watermark=)`` when another ingest of the same source committed first (the recorded
    watermark is no longer ``prior``): nothing was appended; ``ingest`` turns it into a ConflictError."""


class OfflineStore(abc.ABC):
    """Per-view append-only histories. Every append is one atomic commit creating a new, readable version."""

    url: str
    # Records incremental ingests' watermarks in the append's own commit (``append(..., watermark=)``, ``watermark``).
    supports_watermarks = False
    # Records each append's write-time statistics in its own commit (``append(..., statistics=)``,
    # ``statistics_records``); stores without it are never passed ``statistics``.
    supports_statistics = False

    @abc.abstractmethod
    def append(self, view: str, table: pa.Table, *, batch: int, tie_check: TieCheck | None = None,
               history_stats: HistoryStats | None = None, batch_id: str | None = None, once: bool = False,
               progress: StreamProgress | None = None) -> int:
        """Atomically append ``table`` (canonical history columns) as one commit; return the new version.

        Either all rows become visible in one new version or none do.

        - ``batch``: the write batch number of the rows (their ``_skewless_batch``).
        - ``tie_check``: see ``TieCheck``. Stores that keep ``HistoryFiles.tie_level`` call it against the exact
          history they commit on top of; without it the level is unknown, recorded as FULL_TIES (always exact).
        - ``history_stats``: see ``HistoryStats``. Stores that record ``HistoryFiles.key_packing`` ask for it only
          when the recorded packing must widen to fit the new rows; without it (or when it returns None) they
          record the packing as unknown. Stores that record no packing never call it.
        - ``batch_id``: the ingest's identity, recorded in the commit for ``committed``.
        - ``once``: the commit is conditional on no version holding ``batch_id``: BatchAlreadyCommitted when
          another writer committed it first.
        - ``watermark`` (stores with ``supports_watermarks`` only; never passed to others): recorded in the same
          commit, which is conditional on the recorded value being ``watermark.prior`` (else WatermarkMoved).
        - ``progress``: a stream consumer's positions, recorded in the same commit (``stream_progress`` reads them);
          the commit is conditional on the consumer's recorded ``seq`` being ``progress.seq - 1`` (ConflictError
          otherwise: another consumer of the same name committed). Stores that cannot record it raise ConfigError.
          ``table`` may then have no rows (a micro-batch whose records all went to the dead-letter location).
        - ``statistics`` (stores with ``supports_statistics`` only; never passed to others): called once, just
          before the commit, for the encoded statistics of ``table``'s rows (skewless.statistics), recorded in the
          same commit; an error it raises fails the append with nothing committed. Not given: the version (and every
          later one) has no statistics."""

    @abc.abstractmethod
    def version(self, view: str) -> int | None:
        """The newest committed version of ``view``'s history, None when nothing was ever written."""

    @abc.abstractmethod
    def files(self, view: str, version: int | None) -> HistoryFiles:
        """The files making up ``view`` at ``version`` (NotFoundError when that version does not exist)."""

    @abc.abstractmethod
    def drop(self, view: str) -> None:
        """Delete a view's whole history (used when a view is deleted for good)."""

    def statistics_records(self, view: str, version: int) -> list[str]:
        """The encoded statistics records (skewless.statistics) whose merge describes every row appended up to
        ``version``: NotFoundError when there is no such version, StatisticsUnavailable when it has none."""
        from ..errors import StatisticsUnavailable

        raise StatisticsUnavailable(f"the offline store {self.url} records no statistics (view {view!r})",
                                    view=view, version=version)

    def watermark(self, view: str, name: str) -> int | None:
        """The newest watermark recorded under ``name`` for ``view`` (None: never recorded, or not supported)."""
        return None

    def stream_progress(self, view: str, consumer: str) -> StreamProgress | None:
        """The newest ``StreamProgress`` of ``consumer`` committed in ``view``'s history (None: it never committed)."""
        return None

    def compact(self, view: str, target_file_mb: int = 128) -> dict | None:
        """Rewrite a history's small files into few large ones as one new version (the rows unchanged; older
        versions stay readable, their files kept). Returns what was done; None when the store has no files to
        compact (e.g. a warehouse table)."""
        return None

    def committed(self, view: str, batch_id: str) -> CommittedBatch | None:
        """The batch committed with identity ``batch_id`` (the newest, when it was appended more than once)."""
        return None

    def clean_orphans(self, view: str, min_age_hours: int = 1) -> list[str]:
        """Delete data files no committed version references (left by a writer killed before its commit), older
        than ``min_age_hours`` (a younger one may belong to a commit in flight); returns what was deleted."""
        return []

    def snapshot(self, views: list[str]) -> dict[str, int | None]:
        return {v: self.version(v) for v in views}

    # -- erasure and retention (skewless.forget, skewless.retention; stores with ``supports_erasure``) --------------
    supports_erasure = False
    # Rows ``delete_rows`` deletes are gone from every version at once (a warehouse table every version reads, e.g.
    # MaxCompute): it records the expiry of the versions before it itself, before changing data, keeping the
    # versions its ``keep=`` names (pinned versions that held none of the rows); a purge has nothing left to do.
    erases_in_place = False

    def count_key_rows(self, view: str, version: int, key_dtypes: dict, keys: list[tuple]) -> int:
        """Rows of ``view``'s history at ``version`` whose columns ``key_dtypes`` equal one of ``keys`` (forget's
        plan: which registered training sets held them). Default: a scan of the version's Parquet files."""
        from .scan import count_rows

        return count_rows(self.files(view, version), key_dtypes, keys)

    def delete_rows(self, view: str, key_dtypes: dict, keys: list[tuple], *, tag: str) -> tuple[int, int | None]:
        """Delete every row of ``view``'s history whose columns ``key_dtypes`` (name -> skewless dtype, a subset of
        the join keys) equal one of ``keys`` (tuples in that order), as one commit tagged ``tag``; returns (rows
        deleted, the version of that commit or None when nothing was committed). Idempotent by ``tag``: a commit
        already tagged so is found and its count returned, nothing deleted twice. Older versions still hold the
        rows until ``vacuum`` removes the files only they reference."""
        raise ConfigError(f"the offline store {self.url} cannot delete rows of a history (forget needs a Delta "
                          f"store: local, s3://, oss://)")

    def delete_before(self, view: str, before, *, tag: str) -> tuple[int, int | None]:
        """``delete_rows`` of every row whose event time is before ``before`` (an aware datetime): prediction-log
        retention."""
        raise ConfigError(f"the offline store {self.url} cannot delete rows of a history (retention needs a Delta "
                          f"store: local, s3://, oss://)")

    def vacuum(self, view: str, *, retention_hours: float, keep_versions: list[int]) -> list[str]:
        """Physically delete the files no version needs: files removed from the history more than
        ``retention_hours`` ago that neither the newest version nor ``keep_versions`` reference. Returns them."""
        raise ConfigError(f"the offline store {self.url} cannot vacuum a history")

    def expiry(self, view: str) -> tuple[int, list[int]] | None:
        """What a retention run or a purge recorded: (the oldest readable version, older versions kept readable),
        or None when nothing was ever expired."""
        return None

    def set_expiry(self, view: str, oldest: int, kept: list[int]) -> None:
        """Record that versions below ``oldest`` but ``kept`` are no longer readable (before they are vacuumed)."""
        raise ConfigError(f"the offline store {self.url} cannot record a history's retention")

    def version_times(self, view: str) -> list[tuple[int, int]]:
        """(version, commit time in ms since the epoch) of every version whose log entry is kept, oldest first."""
        return []

    def check_readable(self, view: str, version: int | None) -> None:
        """SnapshotExpired when ``version`` of ``view`` was expired by a retention run or a purge."""
        from ..errors import SnapshotExpired

        rec = self.expiry(view) if version is not None else None
        if rec is not None and version < rec[0] and version not in rec[1]:
            raise SnapshotExpired(f"version {version} of the history of {view!r} is past its retention (versions "
                                  f"before {rec[0]} were expired or purged; kept: {rec[1] or 'none'}): it cannot be "
                                  f"rebuilt as it was", view=view, version=version, oldest=rec[0])


class Engine(abc.ABC):
    """What computes over one offline store's histories. The store and the engine are a pair: the engine reads the
    ``HistoryFiles`` its store hands out. Every engine renders the one PIT definition (``pit.py``) in its dialect.

    Capabilities are class attributes (``supports_asof_join``: DuckDB's ASOF join is used for point_in_time="event";
    other engines run the portable window form)."""

    name: str
    dialect: Any  # a sqlglot dialect name or Dialect class, for pit.render / latest_per_entity
    supports_asof_join = False
    # Computes aggregated views' features in training sets (aggregation/sql.py); an engine without it refuses them
    # with an EngineError rather than answering wrong.
    supports_aggregations = False

    @abc.abstractmethod
    def connect(self, *, spare_cores: int = 0) -> Any:
        """A session of its own (``close()``; ``interrupt()`` stops its running query from another thread).
        ``spare_cores``: leave that many cores to work running alongside (materialize's online writes)."""

    def small_session(self) -> Any:
        """A session for small, short queries on the write path (tie checks, a micro-batch's winners); engines whose
        ``connect`` is costly hand out a cheaper one. Default: ``connect()``."""
        return self.connect()

    @abc.abstractmethod
    def historical(self, entity: Any, requests: list, files: dict[str, HistoryFiles], *,
                   snapshot: dict[str, int | None], features: list[str], timestamp_column: str,
                   full_feature_names: bool, point_in_time: str, event_timestamps: bool) -> Any:
        """A training-set job (``to_arrow``/``to_pandas``/``to_df``/``to_reader``/``to_parquet``, ``snapshot``,
        ``features``, ``sql``): per entity row, in input order, each requested feature at the row's time.
        ``requests``: [(FeatureView, [feature names])]; ``files``: each view's history at ``snapshot``."""

    @abc.abstractmethod
    def latest_rows(self, con: Any, view: Any, source: "HistoryFiles | pa.Table", start, end,
                    batch_rows: int = 100_000, tie_level: int = FULL_TIES, *,
                    batch: int | None = None) -> pa.RecordBatchReader:
        """Per entity, the winner at ``end`` among rows with event in [start, end] (start None: unbounded), in key
        order, streamed; columns: join keys, the ordering tuple, features. ``source``: a history snapshot (only its
        rows of write ``batch`` when given), or rows in memory whose ties are described by ``tie_level``."""

    def writes_online(self, online: Any) -> bool:
        """Whether materialize hands this engine the online writes of plain views (``write_latest``: its workers
        write into ``online``, opened where they run) instead of streaming the rows back (``latest_rows``). A
        ConfigError when the engine's options ask for it and ``online`` cannot take it. Default: never."""
        return False

    def write_parts(self) -> int:
        """Into how many parts (by a hash of the join keys) ``write_latest`` splits a new materialize job."""
        raise NotImplementedError(f"the {self.name} engine does not write online")

    def write_latest(self, view: Any, files: "HistoryFiles", start, end, online: Any, *, parts: int,
                     skip: set[int], part_meta: str) -> dict[int, int]:
        """``latest_rows``' winners written newest-wins into the online store by the engine's workers: the rows are
        split into ``parts`` parts by a hash of the join keys (the same split for the same parts count), the parts
        in ``skip`` are left out, and each other part is written by a worker that opens the store from ``online``
        (an ``OnlineOpener``) and, once every row of the part is written, records it done as the store's meta
        ``part_meta + str(part)`` = its rows. Nothing is collected to the caller. Returns the rows per part written."""
        raise NotImplementedError(f"the {self.name} engine does not write online")

    @abc.abstractmethod
    def tie_level(self, view: Any, rows: pa.Table, prior: HistoryFiles | None) -> int:
        """The tie level (HistoryFiles.tie_level) of ``rows`` among themselves and against ``prior`` history."""

    def packing_stats(self, view: Any, prior: HistoryFiles) -> tuple | None:
        """The ``key_packing.packing_stats_sql`` row of a history snapshot, for the store to record its key packing; None
        when this engine cannot compute it (the store then records nothing and retrieval finds it per query)."""
        return None


def distinct_keys(rows: pa.Table, keys: list[str]) -> bool:
    """Whether no two of ``rows`` (keys never null: ingest checked) share their ``keys``: then no two tie on any
    columns that include the keys. One integer key is sorted with numpy (a tenth of Arrow's hash ``count_distinct``:
    bench/results/figures_in_code.md); other keys are hashed by Arrow."""
    if len(keys) == 1:
        col = rows.column(keys[0])
        if pa.types.is_integer(col.type):
            # one chunk (a push's, a small ingest's): the chunk's own to_numpy, not the ChunkedArray's (which goes
            # through Arrow's pandas conversion, ~30 us more per call with the caches cold)
            a = np.sort(col.chunk(0).to_numpy(zero_copy_only=False) if col.num_chunks == 1 else col.to_numpy())
            return not bool((a[1:] == a[:-1]).any())
        return len(pc.unique(col)) == rows.num_rows
    return rows.group_by(keys).aggregate([]).num_rows == rows.num_rows
