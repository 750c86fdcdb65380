"""Feast's feature-server JSON: the requests of ``/get-online-features`` and ``/push`` parsed and checked, and the
online answer rendered as ``feast serve`` renders it (``feast/feature_server.py`` and ``feature_server_utils.py`` of
Feast 0.67), so a Feast HTTP client (its ``remote`` online store, or plain HTTP) reads it unchanged.

    request   {"features": ["view:feature", ...] | "feature_service": "name", "entities": {"key": [v, ...]},
               "full_feature_names": false}
    answer    {"metadata": {"feature_names": [keys..., features...]},
               "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}

One result per column, entity keys first (as Feast does: its remote store reads the view's event time from
``results[1]``), each holding one value per entity. Statuses are Feast's: PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE (our
EXPIRED). Event timestamps are RFC 3339 in UTC with ``Z``; a value that is not PRESENT, and a key, has the epoch
("1970-01-01T00:00:00Z"), as Feast's empty protobuf Timestamp does.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Collection

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from skewless.errors import ValidationError
from skewless.online.base import EXPIRED

from skewless.push import MODES as PUSH_MODES

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_STATUS = {EXPIRED: "OUTSIDE_MAX_AGE"}  # the others (PRESENT, NOT_FOUND) have Feast's names already
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)  # orjson makes these exact types: a value of another type is a list or object
_UTC_US = pa.timestamp("us", tz="UTC")  # ingest's one timestamp type (timeutil.UTC_US)


class OnlineRequest:
    __slots__ = ("features", "entities", "rows", "full_feature_names")

    def __init__(self, features, entities: dict[str, list], rows: list[dict], full_feature_names: bool):
        self.features, self.entities, self.rows, self.full_feature_names = features, entities, rows, full_feature_names


def _object(body: bytes) -> dict:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"the body must be a JSON object, not {type(doc).__name__}")
    return doc


def _columns(value: Any, field: str, max_rows: int, what: str, whats: str) -> tuple[dict[str, list], int]:
    """A columnar object ``{name: [scalar, ...]}`` whose columns have one length (at most ``max_rows``)."""
    if not isinstance(value, dict) or not value:
        raise ValidationError(f"{field!r} must be an object of columns, {{name: [values]}}, with at least one",
                              column=field)
    n = None
    for name, col in value.items():
        if not isinstance(col, list):
            raise ValidationError(f"{field}[{name!r}] must be a list of values, one per {what}", column=name)
        if n is None:
            n = len(col)
        elif len(col) != n:
            raise ValidationError(f"{field}: column {name!r} has {len(col)} values, the first column {n}: every "
                                  f"column needs one value per {what}", column=name)
        if not _SCALAR_TYPES.issuperset(map(type, col)):  # C loops; the row named by the loop below
            for i, v in enumerate(col):
                if not isinstance(v, _SCALARS):
                    raise ValidationError(f"{field}[{name!r}][{i}]: a value must be a string, number, boolean or "
                                          f"null", column=name, row=i)
    if not n:
        raise ValidationError(f"{field!r}: no {whats} (each column is empty)", column=field)
    if n > max_rows:
        raise ValidationError(f"{field!r}: {n:,} {whats} in one request; at most {max_rows:,} (the server's "
                              f"SKEWLESS_FS_MAX_ENTITIES): split the request", column=field)
    return value, n


def _flag(doc: dict, name: str) -> bool:
    v = doc.get(name, False)
    if not isinstance(v, bool):
        raise ValidationError(f"{name!r} must be true or false", column=name)
    return v


def parse_online(body: bytes, max_entities: int) -> OnlineRequest:
    doc = _object(body)
    service, features = doc.get("feature_service"), doc.get("features")
    if service is not None:
        if not isinstance(service, str) or not service:
            raise ValidationError("'feature_service' must be a feature service's name", column="feature_service")
        if features:
            raise ValidationError("give 'features' or 'feature_service', not both", column="features")
        refs: Any = service
    else:
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise ValidationError("'features' must be a non-empty list of \"view:feature\" references (or give "
                                  "'feature_service')", column="features")
        bad = next((f for f in features if f.count(":") != 1 or f.startswith(":") or f.endswith(":")), None)
        if bad is not None:
            raise ValidationError(f"feature reference {bad!r} must look like 'view:feature'", column="features")
        if len(set(features)) != len(features):
            raise ValidationError("a feature is requested twice", column="features")
        refs = features
    entities, n = _columns(doc.get("entities"), "entities", max_entities, "entity", "entities")
    names = list(entities)
    cols = [entities[k] for k in names]
    rows = [dict(zip(names, vals)) for vals in zip(*cols)] if len(names) > 1 else [{names[0]: v} for v in cols[0]]
    return OnlineRequest(refs, entities, rows, _flag(doc, "full_feature_names"))


def render_online(req: OnlineRequest, response) -> bytes:
    """The answer to ``req`` from an ``OnlineResponse``, as JSON bytes."""
    n = len(req.rows)
    epochs = [EPOCH] * n
    present = ["PRESENT"] * n
    names = list(req.entities)
    results = [{"values": col, "statuses": present, "event_timestamps": epochs} for col in req.entities.values()]
    evs = response.event_timestamps
    done: dict[int, list] = {}  # the views' lists are shared by their features: each converted once
    for name, values in response.values.items():
        sts, ts = response.statuses[name], evs[name]
        if id(ts) not in done:
            done[id(ts)] = [EPOCH if t is None else t for t in ts]
        if id(sts) not in done:
            done[id(sts)] = [_STATUS.get(s, s) for s in sts]
        results.append({"values": values, "statuses": done[id(sts)], "event_timestamps": done[id(ts)]})
        names.append(name)
    return orjson.dumps({"metadata": {"feature_names": names}, "results": results},
                        option=orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_SUBCLASS,
                        default=_default)


def _default(v: Any) -> Any:
    if isinstance(v, bytes):  # Feast sends bytes base64-encoded (protobuf's JSON form)
        import base64

        return base64.b64encode(v).decode("ascii")
    if isinstance(v, (list, tuple)):
        return list(v)
    return str(v)


class PushRequest:
    __slots__ = ("source", "columns", "to")

    def __init__(self, source: str, columns: dict[str, list], to: str):
        self.source, self.columns, self.to = source, columns, to


def parse_push(body: bytes, max_rows: int) -> PushRequest:
    """Feast's push request: ``{"push_source_name": ..., "df": {column: [values]}, "to": "online"}``."""
    doc = _object(body)
    source = doc.get("push_source_name")
    if not isinstance(source, str) or not source:
        raise ValidationError("'push_source_name' must name a feature view or a push source", column="push_source_name")
    to = doc.get("to", "online")
    if to not in PUSH_MODES:
        raise ValidationError(f"'to' must be one of {', '.join(PUSH_MODES)}, not {to!r}", column="to")
    columns, _ = _columns(doc.get("df"), "df", max_rows, "row", "rows")
    for name in ("allow_registry_cache", "transform_on_write"):  # Feast's; accepted, and checked to be flags
        if name in doc and not isinstance(doc[name], bool):
            raise ValidationError(f"{name!r} must be true or false", column=name)
    return PushRequest(source, columns, to)


def push_frame(columns: dict[str, list], timestamps: Collection[str] = ()):
    """A push's columns as ingest takes them: a pyarrow Table when every column is a plain non-null Arrow column
    (the common push: numbers, text, flags), else a pandas DataFrame. Both go through ingest's one validation
    (``ingest.prepare``). The Table skips the DataFrame and its conversion back to Arrow; and a column named in
    ``timestamps`` (the views' event and created time columns, which ingest parses as ISO 8601 text) whose every
    value is an ISO 8601 instant with a zone offset is parsed here by Arrow (~10 us for 100 values, against ~0.8 ms
    through pandas inside ingest: most of a 100-row push's CPU, bench/feature_server_bench.py freshness); such text
    names one instant whoever parses it (a column of a few distinct such texts is parsed by Python: ``_instants``).
    Text Arrow refuses (no offset, a date, finer than microseconds) is left for
    ingest's parser, and a column with nulls or values Arrow refuses (mixed types, integers past int64) makes the
    whole push a DataFrame: its values and errors are exactly those of a DataFrame push."""
    arrays = []
    try:
        for name, col in columns.items():
            if name in timestamps and (arr := _instants(col)) is not None:
                arrays.append(arr)
                continue
            arr = pa.array(col)
            if arr.null_count or pa.types.is_null(arr.type):
                break
            if name in timestamps and pa.types.is_string(arr.type):
                try:
                    arr = pc.cast(arr, _UTC_US)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass  # ingest's parser decides (and names the bad value)
            arrays.append(arr)
        else:
            return pa.Table.from_arrays(arrays, names=list(columns))
    except OverflowError:
        _too_large(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass
    import pandas as pd

    try:
        return pd.DataFrame(columns)
    except ValueError as exc:  # e.g. columns of different lengths (checked before; a last guard)
        raise ValidationError(f"'df': {exc}", column="df") from None


# An instant as ISO 8601 text with a zone: date, 'T' or a space, hh:mm:ss, up to 6 fraction digits, 'Z' or +-hh:mm.
# Python's fromisoformat, Arrow's cast and pandas' parser read each such text as the same instant (pandas refuses
# years outside 1677-2262, which Arrow's cast, the path this replaces, takes): tests/serving/test_feature_server_push_frame.py.
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
                      r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
_FEW_INSTANTS = 16
_ONE_US = timedelta(microseconds=1)


def _instants(col: list) -> pa.Array | None:
    """A time column of at most ``_FEW_INSTANTS`` distinct texts, each an ``_INSTANT``, as UTC µs; None otherwise
    (Arrow's cast or ingest's parser decides). A push's rows often share their time (a batch stamped once): each
    distinct text is parsed once, ~1 µs, where Arrow's string-to-timestamp kernel cost ~120 µs of a push paced
    10 ms apart (its code cold: bench/feature_server_bench.py freshness); past a few distinct texts that kernel is
    the cheaper way."""
    parsed = dict.fromkeys(col)
    if len(parsed) > _FEW_INSTANTS:
        return None
    for text in parsed:
        if type(text) is not str or _INSTANT.fullmatch(text) is None:
            return None
        try:
            parsed[text] = (datetime.fromisoformat(text) - EPOCH) // _ONE_US
        except ValueError:  # not a date (30 February): left to the parsers that name it
            return None
    return pa.array([parsed[t] for t in col], pa.int64()).view(_UTC_US)


def _too_large(columns: dict[str, list]) -> None:
    """An integer no column type holds (past 64 bits): a 422 naming it, where ingest's conversion would fail
    untyped."""
    for name, col in columns.items():
        for i, v in enumerate(col):
            if type(v) is int and not -2**63 <= v < 2**64:
                raise ValidationError(f"'df'[{name!r}][{i}]: {v} does not fit a 64-bit integer", column=name, row=i)


def parse_online_write(body: bytes, max_rows: int) -> PushRequest:
    """What Feast's ``remote`` online store sends to write online: ``{"feature_view_name": ..., "df": {...}}``
    (join keys, features, ``event_timestamp`` and ``created``); a push of those rows to the view, online."""
    doc = _object(body)
    view = doc.get("feature_view_name")
    if not isinstance(view, str) or not view:
        raise ValidationError("'feature_view_name' must name a feature view", column="feature_view_name")
    columns, _ = _columns(doc.get("df"), "df", max_rows, "row", "rows")
    return PushRequest(view, columns, "online")
