"""Materialize written by the engine's workers (``Engine.writes_online``: Spark's executors into Redis or Tair).

The view's winners are split into parts by a hash of the join keys; each part is written into the online store by
the worker that computed it (the store's own ``write``: the same encoding and newest-wins as the caller's path) and
recorded done there by that worker, once all its rows are written, as the meta ``materialize_part/<view>/<job>/<part>``
= its rows. The job's checkpoint record (``materialize/<view>``, as for chunks) carries the job's id and parts count,
so a rerun of the same job after a crash splits the same snapshot the same way and skips the finished parts; a part
that was cut short is written again whole, which newest-wins makes harmless. Nothing comes back to the caller but a
row count per part.
"""

from __future__ import annotations

import uuid
from typing import Callable

from .aggregation.definition import AggregatedView
from .definitions import FeatureView
from .errors import EngineError
from .online.base import OnlineOpener

PREFIX = "materialize_part/"


def by_workers(ctx, view: FeatureView) -> bool:
    """Whether ``view`` is materialized by the engine's workers (aggregated views' tiles never are: they take
    ``maintain.refresh``'s path on every engine)."""
    if isinstance(view, AggregatedView) or getattr(ctx, "config", None) is None:
        return False
    return bool(ctx.engine.writes_online(ctx.online))


def forget(online, view: str) -> None:
    """Drop the part records of every job of ``view`` (a finished job's, or an abandoned one's)."""
    for key in online.list_meta(f"{PREFIX}{view}/"):
        online.set_meta(key, None)


def _recorded(online, prefix: str) -> dict[int, int]:
    return {int(k[len(prefix):]): int(v) for k, v in online.list_meta(prefix).items()}


def write(ctx, view: FeatureView, files, start, end, state: dict, save: Callable[[], None]) -> tuple[int, int]:
    """Write the view's winners in [start, end] from the engine's workers. ``state`` is the job's checkpoint record
    (``save()`` stores it): a record without a job id (a new job, or one the caller's path began) gets one, its parts
    count and none done. Returns (rows of the job online, rows of parts an earlier run had finished)."""
    if "token" not in state:
        forget(ctx.online, view.name)
        # rows_done stays 0 in a parts job: a run of the caller's path that resumes this record skips nothing.
        state.update(token=uuid.uuid4().hex, parts=int(ctx.engine.write_parts()), rows_done=0)
    save()
    prefix = f"{PREFIX}{view.name}/{state['token']}/"
    done = _recorded(ctx.online, prefix)
    online = OnlineOpener(ctx.config.online.url, dict(ctx.config.online.options), ctx.config.repo_path)
    wrote = ctx.engine.write_latest(view, files, start, end, online, parts=int(state["parts"]), skip=set(done),
                                    part_meta=prefix)
    recorded = _recorded(ctx.online, prefix)
    unrecorded = sorted(p for p in wrote if recorded.get(p) != wrote[p])
    if unrecorded:  # a worker said it wrote a part it did not record: the job is not known to be complete
        raise EngineError(f"materialize {view.name!r}: parts {unrecorded} were written but not recorded done")
    resumed = sum(done.values())
    return resumed + sum(wrote.values()), resumed


__all__ = ["PREFIX", "by_workers", "forget", "write"]
