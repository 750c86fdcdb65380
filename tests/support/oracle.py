"""Brute-force reference implementation of /work/shared/spec/time-semantics.md.

Written only from the spec, in plain Python, favouring obviousness over speed: every
lookup scans every row. Tests compare the SDK's offline and online paths against it.

Conventions (all from the spec unless marked "oracle convention"):

* Every timestamp is an instant in UTC with microsecond precision. Aware inputs are
  converted to UTC; naive inputs are read as UTC.
* Candidates for entity ``k`` at time ``t``: rows with key ``k`` and
  ``t - ttl <= event_ts <= t`` (both inclusive). ``ttl`` of ``None`` or ``timedelta(0)``
  means no lower bound. With ``point_in_time="available"`` a candidate must also have
  ``created_ts <= t``.
* Winner: the candidate with the greatest ``(event_ts, created_ts, write_order)``.
* No candidate: values null, status ``EXPIRED`` if rows for ``k`` exist with
  ``event_ts <= t`` (in "available" mode only rows with ``created_ts <= t`` count as
  existing) but all are older than ``t - ttl``; otherwise ``NOT_FOUND``.
* A winning row whose feature value is null gives null with status ``PRESENT``.
* Entity rows with a null join-key value get nulls (oracle convention: status NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

PRESENT, NOT_FOUND, EXPIRED = "PRESENT", "NOT_FOUND", "EXPIRED"
POINT_IN_TIME_MODES = ("event", "available")


@dataclass(frozen=True)
class Row:
    key: tuple  # join-key values, in the view's join-key order (never None inside)
    event_ts: datetime  # tz-aware UTC, microsecond precision
    created_ts: datetime  # tz-aware UTC
    write_order: tuple  # comparable; total order over the view's rows, increasing with each write
    values: dict  # feature name -> value (may be None)

    def sort_key(self):
        return (to_utc(self.event_ts), to_utc(self.created_ts), self.write_order)


# --------------------------------------------------------------------------- time


def to_utc(ts) -> datetime | None:
    """Normalise a timestamp to an aware UTC ``datetime`` with microsecond precision.

    Accepts ``datetime`` (and subclasses such as ``pandas.Timestamp``) or ISO-8601 strings.
    Naive values are read as UTC; aware values are converted to UTC. ``None`` stays ``None``.
    Sub-microsecond digits (pandas nanoseconds) are dropped.
    """
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if not isinstance(ts, datetime):
        raise TypeError(f"not a timestamp: {ts!r}")
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        ts = ts.replace(tzinfo=timezone.utc)
    else:
        ts = ts.astimezone(timezone.utc)
    # rebuild as a plain datetime (drops pandas nanoseconds / subclass behaviour)
    return datetime(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond, tzinfo=timezone.utc)


def _has_ttl(ttl) -> bool:
    return ttl is not None and ttl != timedelta(0)


def _check_mode(point_in_time):
    if point_in_time not in POINT_IN_TIME_MODES:
        raise ValueError(f"point_in_time must be one of {POINT_IN_TIME_MODES}, got {point_in_time!r}")


# --------------------------------------------------------------------------- core rule


def value_at(rows, key, t, ttl, point_in_time="event"):
    """Winner for entity ``key`` at time ``t`` per the spec, and its status.

    Returns ``(row, PRESENT)`` or ``(None, NOT_FOUND)`` / ``(None, EXPIRED)``.
    """
    _check_mode(point_in_time)
    key = tuple(key)
    if any(part is None for part in key):
        return None, NOT_FOUND
    t = to_utc(t)
    if t is None:  # oracle convention: no time, no value
        return None, NOT_FOUND

    # rows of this entity that "exist" at t (known, and not in the future)
    existing = []
    for row in rows:
        if tuple(row.key) != key:
            continue
        if to_utc(row.event_ts) > t:
            continue  # future row: not a candidate, does not count for EXPIRED either
        if point_in_time == "available" and to_utc(row.created_ts) > t:
            continue  # not yet known at t
        existing.append(row)

    candidates = []
    for row in existing:
        if _has_ttl(ttl) and to_utc(row.event_ts) < t - ttl:
            continue  # older than t - ttl (the bound itself is inclusive)
        candidates.append(row)

    if not candidates:
        if existing:  # rows exist at or before t, all older than t - ttl
            return None, EXPIRED
        return None, NOT_FOUND

    winner = candidates[0]
    for row in candidates[1:]:
        if row.sort_key() > winner.sort_key():
            winner = row
    return winner, PRESENT


# --------------------------------------------------------------------------- features


def parse_features(views, features, full_feature_names):
    """``["view:feature", ...]`` -> list of ``(view, feature, output_name)``.

    Raises ``ValueError`` for unknown views, malformed references and colliding output
    names (including the same reference requested twice).
    """
    parsed = []
    seen = {}
    for ref in features:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise ValueError(f"feature reference must look like 'view:feature', got {ref!r}")
        view, feat = ref.split(":")
        if view not in views:
            raise ValueError(f"unknown feature view {view!r}")
        name = f"{view}__{feat}" if full_feature_names else feat
        if name in seen:
            raise ValueError(f"feature name collision: {name!r} from {seen[name]!r} and {ref!r}")
        seen[name] = ref
        parsed.append((view, feat, name))
    return parsed


def _entity_key(row: dict, join_keys):
    missing = [k for k in join_keys if k not in row]
    if missing:
        raise ValueError(f"entity row {row!r} lacks join key(s) {missing}")
    return tuple(row[k] for k in join_keys)


def lookup(views, entity_row, features, t, *, point_in_time="event", full_feature_names=False):
    """For one entity row at time ``t``: ``{name: (value, status, event_ts)}``."""
    out = {}
    for view, feat, name in parse_features(views, features, full_feature_names):
        join_keys, ttl, rows = views[view]
        key = _entity_key(entity_row, join_keys)
        winner, status = value_at(rows, key, t, ttl, point_in_time)
        if winner is None:
            out[name] = (None, status, None)
        else:
            out[name] = (winner.values.get(feat), PRESENT, to_utc(winner.event_ts))
    return out


# --------------------------------------------------------------------------- training sets


def training_set(
    views,
    entity_rows,
    features,
    *,
    timestamp_column="event_timestamp",
    point_in_time="event",
    full_feature_names=False,
    with_statuses=False,
):
    """Historical retrieval.

    ``views``: ``{view_name: (join_keys, ttl, rows)}``. ``entity_rows``: list of dicts.
    Returns one dict per input row, in input order, with every input column kept (values
    untouched) plus one column per feature. Output names that collide with each other or
    with an input column raise ``ValueError``.

    With ``with_statuses=True`` each output dict also gets ``"__status__"`` (name ->
    status) and ``"__event_ts__"`` (name -> winning event timestamp); oracle extras.
    """
    _check_mode(point_in_time)
    parsed = parse_features(views, features, full_feature_names)
    names = [name for _, _, name in parsed]
    out = []
    for entity_row in entity_rows:
        if timestamp_column not in entity_row:
            raise ValueError(f"entity row {entity_row!r} lacks timestamp column {timestamp_column!r}")
        clash = [n for n in names if n in entity_row]
        if clash:
            raise ValueError(f"feature name collision with entity columns: {clash}")
        result = dict(entity_row)
        found = lookup(
            views,
            entity_row,
            features,
            entity_row[timestamp_column],
            point_in_time=point_in_time,
            full_feature_names=full_feature_names,
        )
        for name in names:
            result[name] = found[name][0]
        if with_statuses:
            result["__status__"] = {n: found[n][1] for n in names}
            result["__event_ts__"] = {n: found[n][2] for n in names}
        out.append(result)
    return out


# --------------------------------------------------------------------------- online


def online_read(views, entity_rows, features, now, *, full_feature_names=False):
    """What an online read at ``now`` must return (the historical value at ``t = now``).

    ``views`` holds all rows written *and materialised* so far. Returns
    ``{"values": {name: [...]}, "statuses": {name: [...]}, "event_timestamps": {name: [...]}}``,
    one list entry per entity row, in order.
    """
    parsed = parse_features(views, features, full_feature_names)
    names = [name for _, _, name in parsed]
    result = {
        "values": {n: [] for n in names},
        "statuses": {n: [] for n in names},
        "event_timestamps": {n: [] for n in names},
    }
    for entity_row in entity_rows:
        found = lookup(views, entity_row, features, now, point_in_time="event", full_feature_names=full_feature_names)
        for n in names:
            value, status, ets = found[n]
            result["values"][n].append(value)
            result["statuses"][n].append(status)
            result["event_timestamps"][n].append(ets)
    return result


# --------------------------------------------------------------------------- materialisation model


class OnlineModel:
    """The online store as the spec describes it, fed by ingest pushes and ``materialize`` calls.

    * ``write(view, row)``: newest wins; a write never replaces a stored row with a greater
      ``(event_ts, created_ts, write_order)``.
    * ``write_newest(view, rows, key, t)``: write the newest of ``rows`` for ``key`` with
      ``event_ts <= t`` (an ingest push at wall-clock time ``t``).
    * ``materialize(view, rows, start, end)``: for every entity with rows whose event time is in
      ``[start, end]`` (``start=None``: no lower bound), write the winner at ``t = end``.
    * ``read(...)``: stored value if not older than ``now - ttl`` (PRESENT), else null with
      EXPIRED; nothing stored -> NOT_FOUND.

    TTL on write: with ``ttl_on_write=False`` (default) the newest row at ``end`` is written
    even when it is already older than ``end - ttl``. For reads at ``now >= end`` this gives the
    same values as writing only the spec's winner (an expired row can only displace rows older
    than itself, which are expired too), and makes statuses agree with the invariant: EXPIRED
    (rows exist, all too old) instead of NOT_FOUND (nothing stored). ``ttl_on_write=True``
    writes only the strict winner.
    A stored row with event time after ``now`` is never returned (oracle convention: status
    NOT_FOUND; it cannot happen when ``now`` is at or after every write's ``t``).
    """

    def __init__(self, views_meta, *, ttl_on_write=False):
        # views_meta: {view: (join_keys, ttl)}
        self.meta = dict(views_meta)
        self.ttl_on_write = ttl_on_write
        self.stored = {}  # (view, key) -> Row

    def write(self, view, row):
        cur = self.stored.get((view, tuple(row.key)))
        if cur is None or row.sort_key() > cur.sort_key():
            self.stored[(view, tuple(row.key))] = row

    def write_newest(self, view, rows, key, t):
        ttl = self.meta[view][1] if self.ttl_on_write else None
        winner, _ = value_at(rows, key, t, ttl, "event")
        if winner is not None:
            self.write(view, winner)

    def materialize(self, view, rows, start, end):
        start, end = to_utc(start), to_utc(end)
        keys = []
        for row in rows:
            ev = to_utc(row.event_ts)
            if (start is None or start <= ev) and ev <= end and tuple(row.key) not in keys:
                keys.append(tuple(row.key))
        for key in keys:
            self.write_newest(view, rows, key, end)

    def read(self, entity_rows, features, now, *, full_feature_names=False):
        now = to_utc(now)
        parsed = parse_features(self.meta, features, full_feature_names)
        names = [n for _, _, n in parsed]
        result = {
            "values": {n: [] for n in names},
            "statuses": {n: [] for n in names},
            "event_timestamps": {n: [] for n in names},
        }
        for entity_row in entity_rows:
            for view, feat, name in parsed:
                join_keys, ttl = self.meta[view]
                key = _entity_key(entity_row, join_keys)
                row = None if any(p is None for p in key) else self.stored.get((view, key))
                if row is None or to_utc(row.event_ts) > now:
                    value, status, ets = None, NOT_FOUND, None
                elif _has_ttl(ttl) and to_utc(row.event_ts) < now - ttl:
                    value, status, ets = None, EXPIRED, None
                else:
                    value, status, ets = row.values.get(feat), PRESENT, to_utc(row.event_ts)
                result["values"][name].append(value)
                result["statuses"][name].append(status)
                result["event_timestamps"][name].append(ets)
        return result
