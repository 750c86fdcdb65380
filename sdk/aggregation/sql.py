"""The SQL pieces of windowed aggregations every engine shares (DuckDB dialect; sqlglot renders the rest).

Event identity (transformations.md, "Events and their identity") is rendered here once: the offline training-set
query and the online tiles' partials both read a history through ``events``.
"""

from __future__ import annotations

from ..definitions import CREATED_TS, WRITE_BATCH, WRITE_ROW
from ..offline.pit import q


def events(history: str, join_keys: tuple[str, ...], event_id: str | None) -> str:
    """The rows of ``history`` that are events with every version visible (``point_in_time="event"``, and online at
    ``now``): without ``event_id`` every row; with it, per ``(join keys, event_id)`` the version with the greatest
    ``(created_timestamp, write order)`` — its own event time included. A row whose event_id is null is an event of
    its own. ``point_in_time="available"`` picks among versions created by each entity row's time, per row; that
    form lives with the training-set query."""
    if event_id is None:
        return history
    part = ", ".join(q(k) for k in (*join_keys, event_id))
    order = ", ".join(f"{q(c)} DESC" for c in (CREATED_TS, WRITE_BATCH, WRITE_ROW))
    return (f"(SELECT * FROM {history} AS h QUALIFY {q(event_id)} IS NULL OR "
            f"ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {order}) = 1)")
