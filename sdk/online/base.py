"""The online store contract.

Stores keep, per (view, entity), the row with the greatest ``(event_timestamp, created_timestamp, batch, row)``
ever written (newest wins, atomically on the store side). Read-time TTL and statuses are computed here, once, for
every store, so no backend can drift from the spec.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import pyarrow as pa

from ..definitions import FeatureView

PRESENT, NOT_FOUND, EXPIRED = "PRESENT", "NOT_FOUND", "EXPIRED"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass
class ViewRead:
    """One view's part of a batched read: for each requested entity, values, event time and status."""

    view: str
    features: list[str]
    values: list[list[Any]]  # per entity, one value per feature
    event_timestamps: list[datetime | None]
    statuses: list[str]


Key = tuple  # join-key values in the view's join-key order, normalised to Python scalars


class OnlineStore(abc.ABC):
    """Capabilities are class attributes (tests skip by capability, never by backend name)."""

    url: str
    supports_per_field_ttl = False  # evicts values at the store once their TTL passes
    supports_concurrent_writers = True
    # Rows past event time + ttl + eviction_grace (wall clock) are deleted by the store itself; read() applies the
    # TTL at `now` either way, so only statuses differ (an evicted row reads NOT_FOUND, not EXPIRED).
    evicts_expired = False
    eviction_grace = timedelta(0)

    # -- the two hot paths ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        """Newest-wins upsert of ``rows`` (join keys, the ORDER columns, features). Returns rows offered."""

    @abc.abstractmethod
    def read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                 ) -> list[list[tuple[int, list[Any]] | None]]:
        """For each request, for each key: ``(event_time_us, [values of the features])`` or None.

        One call answers every view (one round trip where the store allows it)."""

    def read(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]], now: datetime) -> list[ViewRead]:
        """Batched read with the spec's read-time TTL: a value older than ``now - ttl`` is EXPIRED."""
        now_us = to_us(now)
        out = []
        for (view, feats, _keys), raw in zip(requests, self.read_raw(requests)):
            floor = None if view.ttl is None else now_us - view.ttl // timedelta(microseconds=1)
            nulls = [None] * len(feats)
            values, evs, sts = [], [], []
            for hit in raw:
                if hit is None:
                    values.append(nulls), evs.append(None), sts.append(NOT_FOUND)
                elif hit[0] > now_us:  # written ahead of `now` (a read "in the past"): not yet true
                    values.append(nulls), evs.append(None), sts.append(NOT_FOUND)
                elif floor is not None and hit[0] < floor:
                    values.append(nulls), evs.append(None), sts.append(EXPIRED)
                else:
                    values.append(hit[1]), evs.append(from_us(hit[0])), sts.append(PRESENT)
            out.append(ViewRead(view.name, feats, values, evs, sts))
        return out

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

    def close(self) -> None:  # noqa: B027 - optional hook: stores without connections need nothing
        """Release connections."""
