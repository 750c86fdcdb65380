"""Materialization: history -> online store, chunked, checkpointed per view, resumable and idempotent.

Per view, ``materialize(start, end)`` writes for every entity with rows in [start, end] the spec's winner at
``t = end``. The job records (start, end, history version, rows written) in the online store after every chunk; a
rerun of the same job after a crash reads the same snapshot in the same key order and skips what was written.
Writes are newest-wins, so even a rerun from scratch leaves the same online state as one clean run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import pyarrow as pa

from .definitions import FeatureView
from .ingest import pending_batches, pending_key

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


def push_latest(ctx, view: FeatureView, con, relation: str) -> int:
    """Write online, per entity of ``relation``, its winner at t = now (rows later than now are not true yet)."""
    reader = ctx.engine.latest_rows(con, view, relation, None, ctx.now())
    return sum(ctx.online.write(view, pa.Table.from_batches([b])) for b in reader)


def repair_pending(ctx, views: list[FeatureView]) -> int:
    """Re-push ingest batches whose online push did not finish (a crash between the offline and online write)."""
    pushed = 0
    for view in views:
        batches = pending_batches(ctx.online, view.name)
        if not batches:
            continue
        files = ctx.offline.files(view.name, ctx.offline.version(view.name))
        con = ctx.engine.connect()
        try:
            for b in batches:
                relation = f"(SELECT * FROM {ctx.engine.history_relation(view, files, con)} WHERE _skewless_batch = {int(b)})"
                pushed += push_latest(ctx, view, con, relation)
                ctx.online.set_meta(pending_key(view.name, b), None)
        finally:
            con.close()
    return pushed


def materialize_view(ctx, view: FeatureView, start: datetime | None, end: datetime,
                     progress: ProgressFn | None = None, chunk_rows: int = CHUNK_ROWS) -> ViewResult:
    key = _job_key(view.name)
    ident = {"start": start.isoformat() if start else None, "end": end.isoformat()}
    saved = json.loads(ctx.online.get_meta(key) or "null")
    if saved and not saved.get("done") and {k: saved[k] for k in ident} == ident:
        job = saved  # resume the interrupted run: same snapshot, skip rows already written
    else:
        job = {**ident, "version": ctx.offline.version(view.name), "rows_done": 0, "done": False}
        ctx.online.set_meta(key, json.dumps(job))
    skip = job["rows_done"]
    files = ctx.offline.files(view.name, job["version"])
    con = ctx.engine.connect()
    seen = 0
    try:
        reader = ctx.engine.latest_rows(con, view, files, start, end, chunk_rows)
        for batch in reader:
            n = batch.num_rows
            if seen + n <= skip:
                seen += n
                continue
            if seen < skip:
                batch = batch.slice(skip - seen)
                seen = skip
            ctx.online.write(view, pa.Table.from_batches([batch]))
            seen += batch.num_rows
            job["rows_done"] = seen
            ctx.online.set_meta(key, json.dumps(job))
            if progress:
                progress(view.name, seen)
    finally:
        con.close()
    job["done"] = True
    ctx.online.set_meta(key, json.dumps(job))
    prev = last_end(ctx.online, view.name)
    if prev is None or end > prev:
        ctx.online.set_meta(_end_key(view.name), end.isoformat())
    return ViewResult(view.name, seen, skip, job["version"])


__all__ = ["ViewResult", "last_end", "materialize_view", "push_latest", "repair_pending"]
