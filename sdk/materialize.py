"""Materialization: history -> online store, chunked, checkpointed per view, resumable and idempotent.

Per view, ``materialize(start, end)`` writes for every entity with rows in [start, end] the spec's winner at
``t = end``. The job records (start, end, history version, rows written) in the online store after every chunk; a
rerun of the same job after a crash reads the same snapshot in the same key order and skips what was written.
Writes are newest-wins, so even a rerun from scratch leaves the same online state as one clean run.

The scans (the engine's ``latest_rows``) run in a thread ahead of the writes (``materialize_scan.ReadAhead``): while
the online store takes one chunk, the engine computes the next chunk or the next view. Writes, checkpoints and progress
callbacks stay in the caller's thread, in order, so a checkpoint never covers a row that is not written yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from . import materialize_parts as parts
from .materialize_scan import ReadAhead
from .aggregation import maintain
from .aggregation.definition import AggregatedView
from .definitions import EVENT_TS, WRITE_BATCH, FeatureView
from .errors import ValidationError
from .faults import kill_point
from .ingest import pending_batches, pending_key
from .offline.base import FULL_TIES, distinct_keys
from .offline.pit import ORDER, q
from .online.base import StagedWrite, to_us
from .timeutil import UTC_US

ProgressFn = Callable[[str, int], None]
CHUNK_ROWS = 50_000


@dataclass
class ViewResult:
    view: str
    rows: int
    resumed_from: int
    version: int | None


def _job_key(view: str) -> str:
    return f"materialize/{view}"


def _end_key(view: str) -> str:
    return f"materialized_end/{view}"


def last_end(online, view: str) -> datetime | None:
    v = online.get_meta(_end_key(view))
    return datetime.fromisoformat(v) if v else None


def forget_progress(online, view: str) -> None:
    """Forget the view's materialize checkpoint and last end: the next materialization starts from its beginning."""
    online.set_meta(_job_key(view), None)
    online.set_meta(_end_key(view), None)
    parts.forget(online, view)


def incremental_starts(online, views: list[FeatureView], end: datetime, allow_rewind: bool = False
                       ) -> list[datetime | None]:
    """Where ``materialize_incremental(end)`` starts each view: its last materialized end (None: from the
    beginning). An ``end`` before a view's last end is a ValidationError, checked for every view before anything is
    written (it would re-materialize the whole history, which a typo in END must not do silently); with
    ``allow_rewind`` such a view is re-materialized from its beginning up to ``end``."""
    starts = [last_end(online, v.name) for v in views]
    behind = [(v.name, s) for v, s in zip(views, starts) if s is not None and end < s]
    if behind and not allow_rewind:
        name, start = behind[0]
        raise ValidationError(f"end {end.isoformat()} is before the last materialized end of view {name!r} "
                              f"({start.isoformat()}); materialize-incremental only moves forward (pass "
                              f"allow_rewind=True / --allow-rewind to re-materialize from the beginning up to end)")
    return [None if s is not None and end < s else s for s in starts]


def push_latest(ctx, view: FeatureView, source, tie_level: int = FULL_TIES, batch: int | None = None,
                point: str = "ingest.online_push_chunk") -> int:
    """Write online, per entity of ``source`` (rows in memory, or a history snapshot: only write ``batch`` of it),
    its winner at t = now (rows later than now are not true yet). ``tie_level``: which ties rows in memory may hold
    (HistoryFiles.tie_level; the default assumes any)."""
    written = 0
    tables = _winners(ctx, view, source, ctx.now(), tie_level, batch)
    try:
        for t in tables:
            written += ctx.online.write(view, t)
            kill_point(point)
    finally:
        tables.close()
    return written


def _winners(ctx, view: FeatureView, source, now: datetime, tie_level: int = FULL_TIES, batch: int | None = None
             ) -> Iterator[pa.Table]:
    """``push_latest``'s rows to write, as tables."""
    if batch is None and isinstance(source, pa.Table):
        own = _own_winners(view, source, now)
        if own is not None:
            yield own
            return
    # A micro-batch's or a small ingest's rows: a cheap session, not a database (and memory limit) of its own.
    small = isinstance(source, pa.Table) and source.num_rows <= SMALL_SESSION_ROWS
    con = ctx.engine.small_session() if small else ctx.engine.connect()
    try:
        for b in ctx.engine.latest_rows(con, view, source, None, now, tie_level=tie_level, batch=batch):
            yield pa.Table.from_batches([b])
    finally:
        con.close()


def _later_than(ev: pa.ChunkedArray, now: datetime) -> bool:
    """Whether any event time is later than ``now``. Ingest's rows hold UTC µs without nulls: numpy's max of their one
    chunk (Arrow's ``max`` kernel and a datetime made of its result were ~60 µs of a push paced 10 ms apart, caches
    cold); anything else as before."""
    if ev.type == UTC_US and ev.num_chunks == 1 and not ev.null_count and now.tzinfo is not None:
        return int(ev.chunk(0).to_numpy().view("int64").max()) > to_us(now)
    return pc.max(ev).as_py() > now


STAGE_MIN_ROWS = 10_000


def stage_push(ctx, view: FeatureView, rows: pa.Table, meta: dict[str, str | None] | None = None
               ) -> StagedWrite | None:
    """The online push of an ingest's ``rows``, begun before its offline append where the online store stages
    writes (``OnlineStore.stage_write``): the winners are computed and upserted in a thread, in a transaction
    that the caller commits after the offline commit (``commit()``; ``abort()`` when the append failed), so the
    push runs on the second core alongside the append instead of after it, and nothing is visible online before
    the rows are in the history. None: the push happens after the commit (``push_batch``): an aggregated view, a
    store that does not stage, fewer than STAGE_MIN_ROWS rows (a thread and a transaction of their own cost more
    than they save there), or more than SMALL_SESSION_ROWS (an engine scan of their own beside the append's tie
    check would hold two scans' memory at once). ``meta``: bookkeeping entries written with the rows (an ingest's
    pending marker cleared in the same commit)."""
    if isinstance(view, AggregatedView) or not ctx.online.stages_writes or \
            not STAGE_MIN_ROWS <= rows.num_rows <= SMALL_SESSION_ROWS:
        return None
    now = ctx.now()
    return ctx.online.stage_write(view, lambda: _winners(ctx, view, rows, now), meta)


SMALL_SESSION_ROWS = 1_000_000
FAST_ROWS = 100_000  # the engine's own batch size for latest_rows: a larger table takes the engine's path


def _own_winners(view: FeatureView, rows: pa.Table, now: datetime) -> pa.Table | None:
    """``rows`` (in memory) as ``latest_rows`` would return them, without the engine, when each row is its entity's
    winner already: one row per entity and none later than ``now``. None otherwise. A push or a small ingest is
    mostly this case, and the engine's connection and query cost ~15 ms for what is then a projection (the
    feature server's push freshness, bench/feature_server_bench.py)."""
    if rows.num_rows == 0 or rows.num_rows > FAST_ROWS:
        return None
    keys = list(view.join_keys)
    if not distinct_keys(rows, keys) or _later_than(rows.column(EVENT_TS), now):
        return None
    return rows.select([*keys, *ORDER, *view.feature_names])


def push_batch(ctx, view: FeatureView, rows: pa.Table | None, batch: int, version: int | None = None,
               point: str = "ingest.online_push_chunk", ahead: maintain.Ahead | None = None) -> int:
    """The online part of an ingest of write ``batch`` (its rows, when in memory): the newest values of a plain
    view; an aggregated view's tiles dirtied by the batch, recomputed from the history at ``version`` (default: the
    newest) and overwritten (maintain.refresh: a rerun writes the same tiles again). ``ahead``: the tiles of
    ``rows`` started before their commit (``maintain.start_ahead``)."""
    if not isinstance(view, AggregatedView):
        if rows is not None:
            return push_latest(ctx, view, rows, point=point)
        files = ctx.offline.files(view.name, ctx.offline.version(view.name) if version is None else version)
        return push_latest(ctx, view, files, batch=batch, point=point)
    # A rerun or repair (rows not in memory) recomputes from the newest history: it holds the batch and whatever
    # came after it, and the store keeps the partials of the newest version anyway.
    files = ctx.offline.files(view.name, ctx.offline.version(view.name) if version is None or rows is None
                              else version)
    return maintain.refresh(ctx, view, files, f'{q(WRITE_BATCH)} = {int(batch)}', rows=rows,
                            on_chunk=lambda _done: kill_point(point), ahead=ahead)


def repair_pending(ctx, views: list[FeatureView]) -> int:
    """Re-push ingest batches whose online push did not finish (a crash between the offline and online write)."""
    pushed = 0
    for view in views:
        batches = pending_batches(ctx.online, view.name)
        if not batches:
            continue
        version = ctx.offline.version(view.name)
        for b in batches:
            pushed += push_batch(ctx, view, None, b, version)
            ctx.online.set_meta(pending_key(view.name, b), None)
    return pushed


@dataclass
class _Job:
    view: FeatureView
    start: datetime | None
    end: datetime
    state: dict  # the checkpoint record: start, end, history version, rows_done, done
    fresh: bool  # not a resumed run: the record is saved when its first row is about to be written
    skip: int = 0  # rows a resumed run already wrote (the scan is in the same order, so the first ``skip`` rows)
    files: object = None


def _prepare(ctx, view: FeatureView, start: datetime | None, end: datetime) -> _Job:
    key = _job_key(view.name)
    ident = {"start": start.isoformat() if start else None, "end": end.isoformat()}
    saved = json.loads(ctx.online.get_meta(key) or "null")
    if saved and not saved.get("done") and {k: saved[k] for k in ident} == ident:
        job = _Job(view, start, end, saved, False, saved["rows_done"])  # resume: same snapshot, skip rows written
    else:
        job = _Job(view, start, end, {**ident, "version": ctx.offline.version(view.name), "rows_done": 0,
                                      "done": False}, True)
    job.files = ctx.offline.files(view.name, job.state["version"])
    return job


def _finish(ctx, job: _Job) -> None:
    """The job is done: its record says so, and the view's last end moves forward (never back)."""
    job.state["done"] = True
    ctx.online.set_meta(_job_key(job.view.name), json.dumps(job.state))
    prev = last_end(ctx.online, job.view.name)
    if prev is None or job.end > prev:
        ctx.online.set_meta(_end_key(job.view.name), job.end.isoformat())


def _by_workers(ctx, job: _Job, progress: ProgressFn | None) -> ViewResult:
    """A view the engine's workers write (``materialize_parts``), checkpointed per part."""
    key, state = _job_key(job.view.name), job.state
    rows, resumed = parts.write(ctx, job.view, job.files, job.start, job.end, state,
                                lambda: ctx.online.set_meta(key, json.dumps(state)))
    state["rows_done"] = rows
    if progress:
        progress(job.view.name, rows)
    _finish(ctx, job)
    parts.forget(ctx.online, job.view.name)
    return ViewResult(job.view.name, rows, resumed, state["version"])


def materialize_views(ctx, specs: list[tuple[FeatureView, datetime | None, datetime]],
                      progress: ProgressFn | None = None, chunk_rows: int = CHUNK_ROWS) -> list[ViewResult]:
    """Materialize each (view, start, end) in turn; the scans run ahead of the writes (``ReadAhead``), or the
    engine's workers write the rows (``materialize_parts``) where the engine and the online store allow it.

    A view's checkpoint is saved after each chunk, once every row before it was written: the writes and the
    checkpoints stay in this thread and in order, so resuming after a crash skips only rows that are online."""
    jobs = [_prepare(ctx, v, s, e) for v, s, e in specs]
    workers = [parts.by_workers(ctx, j.view) for j in jobs]
    scanned = iter(_scan_and_write(ctx, [j for j, w in zip(jobs, workers) if not w], progress, chunk_rows))
    return [_by_workers(ctx, j, progress) if w else next(scanned) for j, w in zip(jobs, workers)]


def _scan_and_write(ctx, jobs: list[_Job], progress: ProgressFn | None, chunk_rows: int) -> list[ViewResult]:
    if not jobs:
        return []
    results: list[ViewResult] = []
    seen, started = 0, -1
    with ReadAhead(ctx, jobs, chunk_rows) as scan:
        for item in scan:
            job = jobs[item[1]]
            key, state = _job_key(job.view.name), job.state
            if item[1] != started:
                started, seen = item[1], 0
                if job.fresh:
                    ctx.online.set_meta(key, json.dumps(state))
            skip = job.skip
            if item[0] == "rows":
                batch = item[2]
                n = batch.num_rows
                if seen + n <= skip:
                    seen += n
                    continue
                if seen < skip:
                    batch = batch.slice(skip - seen)
                    seen = skip
                ctx.online.write(job.view, pa.Table.from_batches([batch]))
                kill_point("materialize.before_checkpoint")
                seen += batch.num_rows
                state["rows_done"] = seen
                ctx.online.set_meta(key, json.dumps(state))
                kill_point("materialize.after_checkpoint")
                if progress:
                    progress(job.view.name, seen)
                continue
            # ("end", i): every row of the view is online
            _finish(ctx, job)
            results.append(ViewResult(job.view.name, seen, skip, state["version"]))
            if len(results) == len(jobs):
                break
    return results


def materialize_tiles(ctx, view: AggregatedView, start: datetime | None, end: datetime,
                      progress: ProgressFn | None = None) -> ViewResult:
    """Backfill an aggregated view's tiles: every tile holding a row with event time in [start, end] is recomputed
    from the history and overwritten. Checkpointed per chunk of entities (``rows_done`` counts entities here): a
    rerun of the same job resumes after the last chunk written (and a rerun from scratch writes the same tiles)."""
    maintain.check_store(ctx, view)
    job = _prepare(ctx, view, start, end)
    key, state = _job_key(view.name), job.state
    if job.fresh:
        ctx.online.set_meta(key, json.dumps(state))
    lo = f"{to_us(start)} <= " if start is not None else ""
    where = f"{lo}epoch_us({q(EVENT_TS)}) AND epoch_us({q(EVENT_TS)}) <= {to_us(end)}" if lo else \
        f"epoch_us({q(EVENT_TS)}) <= {to_us(end)}"

    def checkpoint(done: int) -> None:
        kill_point("materialize.before_checkpoint")
        state["rows_done"] = done
        ctx.online.set_meta(key, json.dumps(state))
        kill_point("materialize.after_checkpoint")
        if progress:
            progress(view.name, done)
    maintain.refresh(ctx, view, job.files, where, skip=job.skip, on_chunk=checkpoint)
    _finish(ctx, job)
    return ViewResult(view.name, state["rows_done"], job.skip, state["version"])


def materialize_any(ctx, specs: list[tuple[FeatureView, datetime | None, datetime]],
                    progress: ProgressFn | None = None, chunk_rows: int = CHUNK_ROWS) -> list[ViewResult]:
    """``materialize_views`` for plain views, ``materialize_tiles`` for aggregated ones; results in ``specs`` order."""
    plain = iter(materialize_views(ctx, [s for s in specs if not isinstance(s[0], AggregatedView)], progress,
                                   chunk_rows))
    return [materialize_tiles(ctx, v, s, e, progress) if isinstance(v, AggregatedView) else next(plain)
            for v, s, e in specs]


def materialize_view(ctx, view: FeatureView, start: datetime | None, end: datetime,
                     progress: ProgressFn | None = None, chunk_rows: int = CHUNK_ROWS) -> ViewResult:
    return materialize_views(ctx, [(view, start, end)], progress, chunk_rows)[0]


__all__ = ["ViewResult", "incremental_starts", "last_end", "materialize_any", "materialize_tiles", "materialize_view",
           "materialize_views", "push_batch", "push_latest", "repair_pending", "stage_push"]
