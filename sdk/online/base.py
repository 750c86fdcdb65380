"""The online store contract.

Stores keep, per (view, entity), the row with the greatest ``(event_timestamp, created_timestamp, batch, row)``
ever written (newest wins, atomically on the store side). Read-time TTL and statuses are computed here, once, for
every store, so no backend can drift from the spec.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from math import inf
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa

from ..definitions import FeatureView
from ..plugins import load

PRESENT, NOT_FOUND, EXPIRED = "PRESENT", "NOT_FOUND", "EXPIRED"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + _US * us  # a timedelta times an int is exact, and faster than timedelta(microseconds=us)


@dataclass
class ViewRead:
    """One view's part of a batched read: for each requested entity, values, event time and status."""

    view: str
    features: list[str]
    values: list[list[Any]]  # per entity, one value per feature
    event_timestamps: list[datetime | None]
    statuses: list[str]


@dataclass
class ColumnRead:
    """``ViewRead`` by column: one list per feature, and the event times kept as µs until asked for."""

    view: str
    features: list[str]
    columns: list[list[Any]]  # per feature, one value per entity (null unless PRESENT)
    event_us: list[int | None]  # per entity, the value's event time (None unless PRESENT)
    statuses: list[str]

    @property
    def event_timestamps(self) -> list[datetime | None]:
        return [None if e is None else _EPOCH + _US * e for e in self.event_us]


@dataclass(frozen=True)
class OnlineOpener:
    """How another process opens the same online store: the configuration's URL and options (credentials included:
    it travels only to the engine's own workers) and the repo folder relative paths are resolved against.
    Picklable; ``open()`` goes through the plugin table as the driver did."""

    url: str
    options: dict
    repo_path: Any = None

    def open(self) -> "OnlineStore":
        return load("online", self.url)(self.url, self.repo_path, dict(self.options))


Key = tuple  # join-key values in the view's join-key order, normalised to Python scalars


class StagedWrite:
    """A write begun by ``OnlineStore.stage_write``: ``commit()`` makes it visible and returns the rows offered,
    ``abort()`` drops it."""

    def __init__(self, commit: Callable[[], int], abort: Callable[[], None] = lambda: None):
        self.commit, self.abort = commit, abort


class OnlineStore(abc.ABC):
    """Capabilities are class attributes (tests skip by capability, never by backend name)."""

    url: str
    supports_per_field_ttl = False  # evicts values at the store once their TTL passes
    supports_concurrent_writers = True
    # Rows past event time + ttl + eviction_grace (wall clock) are deleted by the store itself; read() applies the
    # TTL at `now` either way, so only statuses differ (an evicted row reads NOT_FOUND, not EXPIRED).
    evicts_expired = False
    eviction_grace = timedelta(0)
    embedded = False  # reads only touch this machine's files: a read cannot hang on a network or another server
    supports_tiles = False  # keeps aggregated views' tiles (write_tiles / read_tiles)
    stages_writes = False  # stage_write works ahead in a transaction of its own (else it only defers the write)
    # Other processes may open it from its configuration (``OnlineOpener``) and write into it at the same time, each
    # with ``write``: materialize lets an engine's workers write their part of a view (Spark's executors). An
    # embedded file store (SQLite) keeps its one writer, the caller of materialize.
    accepts_worker_writes = False

    # -- the two hot paths ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        """Newest-wins upsert of ``rows`` (join keys, the ORDER columns, features). Returns rows offered."""

    @abc.abstractmethod
    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        """For each request, for each key: ``(event_time_us, [values of the features])`` or None.

        One call answers every view (one round trip where the store allows it)."""

    def read_raw_columns(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                         ) -> list[tuple[list[int | None], list[list[Any]]]]:
        """``read_raw`` by column: for each request, the event time (µs) per key (None: not stored) and one list per
        feature (None where not stored). A store that decodes by column overrides this; the default transposes."""
        out = []
        for (_view, feats, _keys), raw in zip(requests, self.read_raw(requests)):
            nulls = [None] * len(feats)
            evs = [None if h is None else h[0] for h in raw]
            rows = [nulls if h is None else h[1] for h in raw]
            out.append((evs, [list(c) for c in zip(*rows)] if rows else [[] for _ in feats]))
        return out

    def read_columns(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]], now: datetime
                     ) -> list[ColumnRead]:
        """Batched read with the spec's read-time TTL, by column: a value older than ``now - ttl`` is EXPIRED, one
        written after ``now`` (a read "in the past": not yet true) NOT_FOUND; their values are null."""
        now_us = to_us(now)
        out = []
        for (view, feats, _keys), (evs, cols) in zip(requests, self.read_raw_columns(requests)):
            ttl = view.ttl
            floor = -inf if ttl is None else now_us - ttl // _US
            if evs and None not in evs and floor <= min(evs) and max(evs) <= now_us:  # all present: C-level checks
                sts = [PRESENT] * len(evs)
            else:
                sts = [PRESENT if e is not None and floor <= e <= now_us else NOT_FOUND if e is None or e > now_us
                       else EXPIRED for e in evs]
            if len(evs) - evs.count(None) > sts.count(PRESENT):  # stored, but not a value at `now`: nulled
                stale = [i for i, (e, s) in enumerate(zip(evs, sts)) if e is not None and s is not PRESENT]
                evs = list(evs)
                for i in stale:
                    evs[i] = None
                    for c in cols:
                        c[i] = None
            out.append(ColumnRead(view.name, feats, cols, evs, sts))
        return out

    def read(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]], now: datetime) -> list[ViewRead]:
        """``read_columns`` by entity."""
        out = []
        for r in self.read_columns(requests, now):  # values not PRESENT are already null in the columns
            values = [list(v) for v in zip(*r.columns)] if r.features else [[] for _ in r.statuses]
            out.append(ViewRead(r.view, r.features, values, r.event_timestamps, r.statuses))
        return out

    # -- aggregation tiles (aggregated views; skewless.aggregation decides what they hold) ----------------------
    def write_tiles(self, view: FeatureView, tiles: Sequence[tuple[Key, int, int, bytes | None]], version: int
                    ) -> int:
        """Overwrite each ``(entity key, level, tile)``'s encoded partial (None: the tile holds no event any more),
        unless the stored one was written from a later history ``version`` (then it is kept: a writer holding an
        older snapshot never undoes a newer one). Idempotent. Returns the number of tiles offered."""
        raise NotImplementedError(f"{type(self).__name__} keeps no aggregation tiles")

    def stage_write(self, view: FeatureView, tables: Callable[[], Iterable[pa.Table]],
                    meta: Mapping[str, str | None] | None = None) -> "StagedWrite":
        """``write`` of the tables ``tables()`` yields, visible only once ``commit()`` of the returned object has run,
        never after ``abort()`` (one of the two is called). A store that ``stages_writes`` does the work now, in a
        thread, in a transaction that ``commit()`` completes: a caller commits elsewhere meanwhile (an ingest, its
        offline append) and makes the rows visible after that, as if it had written them then; a crash before
        ``commit()`` leaves none of them. ``meta``: bookkeeping entries ``set_meta`` at commit, after the rows (in
        the same transaction where the store stages writes: an ingest's pending marker goes with its rows).
        Default: the whole write at ``commit()``."""
        def commit() -> int:
            n = sum(self.write(view, t) for t in tables())
            for k, v in (meta or {}).items():
                self.set_meta(k, v)
            return n
        return StagedWrite(commit)

    def start_write_tiles(self, view: FeatureView, tiles, version: int) -> Callable[[], int]:
        """``write_tiles`` in two halves: this call may only send the writes; the function it returns waits until
        they are done (raising their error) and returns ``write_tiles``' result. More batches may be started before
        it is called; the functions are then called in start order, before any other call on the store from this
        thread. The caller computes the next tiles meanwhile (the store's server works while the client does).
        Default: the whole write now."""
        n = self.write_tiles(view, tiles, version)
        return lambda: n

    def read_tiles(self, view: FeatureView, keys: list[Key], tiles: list[tuple[int, int]]
                   ) -> list[dict[tuple[int, int], bytes]]:
        """For each key, the stored partials among ``tiles`` (``(level, tile)``; absent ones are left out). The same
        tiles for every key (a window's tiles depend only on ``now``): one round trip where the store allows."""
        raise NotImplementedError(f"{type(self).__name__} keeps no aggregation tiles")

    # -- bookkeeping (checkpoints, pending ingest pushes) -----------------------------------------------------
    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None delete) a small bookkeeping value."""

    @abc.abstractmethod
    def list_meta(self, prefix: str) -> dict[str, str]: ...

    @abc.abstractmethod
    def drop_view(self, view: str) -> None:
        """Forget every value of ``view``."""

    def delete_entities(self, view: FeatureView, key_columns: Sequence[str], keys: Sequence[Key]) -> int:
        """Erase every row and every aggregation tile of ``view`` whose join keys ``key_columns`` (all of the view's
        join keys, or a subset: one entity of a view keyed by several) equal one of ``keys`` (tuples in
        ``key_columns`` order). Idempotent. Returns how many stored entities (a row, or an entity's tiles) went.
        With a subset of the join keys a store may scan the view's keys. ``forget`` calls it."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete entities")

    def holds_rows(self, view: FeatureView) -> bool | None:
        """Whether the store holds at least one row of ``view``, found with a bounded amount of work (a serving
        readiness check calls it every few seconds); None when the store cannot tell cheaply."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: stores without connections need nothing
        """Release connections."""
