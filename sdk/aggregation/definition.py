"""Windowed aggregations: the definition (`AggregatedView`, `Aggregation`) and the tile arithmetic every engine and
store shares.

The semantics are ``/work/shared/spec/transformations.md`` section 1 (sawtooth windows with a hop, event identity,
each function's value). This module holds only what is true for every engine: which functions exist, which column
types they accept and what type they return, the window and tile boundaries in integer microseconds. The offline
SQL and the online tiles are rendered from it elsewhere; none of them may re-decide any of it.

An aggregated view *owns* an event history, stored exactly like a plain view's history (``stored_fields`` are the
event columns); what it serves as features (``features``) are the aggregation outputs, named ``view:output``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

from .. import dtypes
from ..definitions import RESERVED, DataSource, Entity, FeatureView, Field, check_name
from ..dtypes import DType
from ..errors import DefinitionError

US = timedelta(microseconds=1)

NUMERIC = (dtypes.Int32, dtypes.Int64, dtypes.Float32, dtypes.Float64)
ORDERED = (*NUMERIC, dtypes.String, dtypes.UnixTimestamp)
# function -> the column dtypes it accepts (None: any, incl. no column for count(*))
FUNCTIONS: dict[str, tuple[DType, ...] | None] = {
    "count": None, "count(*)": None, "sum": NUMERIC, "mean": NUMERIC, "min": ORDERED, "max": ORDERED,
    "var": NUMERIC, "stddev": NUMERIC, "last": None, "last_k": None,
}
_LAST_K = re.compile(r"^last_k\((\d+)\)$")


def result_dtype(function: str, column: DType | None) -> DType:
    """The output dtype of ``function`` over a column of ``column``'s dtype (spec table: sum stays Int64 for ints)."""
    if function in ("count", "count(*)"):
        return dtypes.Int64
    if function == "sum":
        return dtypes.Int64 if column in (dtypes.Int32, dtypes.Int64) else dtypes.Float64
    if function in ("mean", "var", "stddev"):
        return dtypes.Float64
    assert column is not None
    return column  # min, max, last; last_k's element type (its output is a list of it)


def window_label(window: timedelta) -> str:
    """``7d``, ``1h``, ``90m``, ``30s``: the largest unit that divides the window exactly."""
    us = window // US
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def _duration(value: Any, what: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise DefinitionError(f"{what} must be a timedelta, got {value!r}")
    if value <= timedelta(0):
        raise DefinitionError(f"{what} must be positive, got {value}")
    if value % US:
        raise DefinitionError(f"{what} must be a whole number of microseconds, got {value}")
    return value


@dataclass(frozen=True)
class Aggregation:
    """``(column, function, window)``; ``count(*)`` takes no column; ``last_k`` takes ``k`` (or ``"last_k(3)"``)."""

    column: str | None
    function: str
    window: timedelta
    name: str | None = None
    k: int | None = None

    def __post_init__(self) -> None:
        fn, k = self.function, self.k
        if not isinstance(fn, str):
            raise DefinitionError(f"aggregation function must be a string, got {fn!r}")
        m = _LAST_K.match(fn)
        if m:
            if k is not None and k != int(m.group(1)):
                raise DefinitionError(f"aggregation {fn!r}: k={k} contradicts the function name")
            fn, k = "last_k", int(m.group(1))
        if fn not in FUNCTIONS:
            raise DefinitionError(f"unknown aggregation function {self.function!r}; known: "
                                  f"{', '.join(FUNCTIONS)} (last_k as 'last_k(k)' or k=)")
        if fn == "count" and self.column in (None, "*"):
            fn = "count(*)"
        if fn == "last_k":
            if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                raise DefinitionError(f"aggregation last_k needs a positive integer k, got {k!r}")
        elif k is not None:
            raise DefinitionError(f"aggregation {fn!r} takes no k")
        column = None if fn == "count(*)" else self.column
        if fn != "count(*)":
            check_name("aggregation column", column)
        _duration(self.window, f"aggregation {fn}({column}) window")
        object.__setattr__(self, "function", fn)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "column", column)
        name = self.name or self.default_name()
        object.__setattr__(self, "name", check_name("aggregation output", name))

    def default_name(self) -> str:
        fn = f"last_{self.k}" if self.function == "last_k" else self.function
        head = "count" if self.function == "count(*)" else f"{self.column}_{fn}"
        return f"{head}_{window_label(self.window)}"

    @property
    def window_us(self) -> int:
        return self.window // US

    def to_dict(self) -> dict:
        return {"name": self.name, "column": self.column, "function": self.function,
                "window_us": self.window_us, "k": self.k}

    @classmethod
    def from_dict(cls, d: dict) -> "Aggregation":
        return cls(d["column"], d["function"], timedelta(microseconds=d["window_us"]), d["name"], d.get("k"))


class AggregatedView(FeatureView):
    """A view over an event history whose features are windowed aggregations of its event columns.

    ``schema`` declares the event columns (and join keys) as for any view; they are what ``ingest`` accepts and what
    the history stores. ``aggregations`` declares the features; ``hop`` is the tile size every window is a multiple
    of; ``event_id`` (optional) names the column whose equal values (per entity) are versions of one event.
    """

    spec_marker = "aggregations"

    def __init__(self, name: str, entities: Sequence[Entity | str], schema: Sequence[Field],
                 aggregations: Sequence[Aggregation], hop: timedelta, *, event_id: str | None = None,
                 source: DataSource | None = None, owner: str = "", tags: dict[str, str] | None = None,
                 description: str = "", online: bool = True, history_retention: timedelta | None = None):
        self.aggregations = list(aggregations or [])
        if not self.aggregations:
            raise DefinitionError(f"aggregated view {name!r}: needs at least one aggregation")
        self.hop = _duration(hop, f"aggregated view {name!r} hop")
        self.event_id = event_id
        super().__init__(name, entities, schema, source, None, owner=owner, tags=tags, description=description,
                         online=online, history_retention=history_retention)
        self._check()

    def _check(self) -> None:
        name = self.name
        columns = {f.name: f.dtype for f in self.schema}
        for a in self.aggregations:
            if not isinstance(a, Aggregation):
                raise DefinitionError(f"aggregated view {name!r}: aggregations must be skewless.Aggregation")
            if a.window_us % self.hop_us:
                raise DefinitionError(f"aggregated view {name!r}: window {a.window} of {a.name!r} is not a multiple "
                                      f"of the hop {self.hop}")
            if a.column is not None:
                if a.column not in columns or a.column in self.join_keys_declared:
                    raise DefinitionError(f"aggregated view {name!r}: aggregation {a.name!r} reads unknown event "
                                          f"column {a.column!r}; columns: {sorted(self._event_columns())}")
                allowed = FUNCTIONS[a.function]
                if allowed is not None and columns[a.column] not in allowed:
                    raise DefinitionError(f"aggregated view {name!r}: {a.function} does not apply to column "
                                          f"{a.column!r} of type {columns[a.column]}")
        outputs = [a.name for a in self.aggregations]
        dup = sorted({n for n in outputs if outputs.count(n) > 1})
        if dup:
            raise DefinitionError(f"aggregated view {name!r}: duplicate aggregation outputs {dup}; give them names")
        clash = sorted(set(outputs) & (RESERVED | set(self.join_keys_declared)))
        if clash:
            raise DefinitionError(f"aggregated view {name!r}: aggregation outputs {clash} clash with key or reserved "
                                  f"column names")
        if self.event_id is not None and self.event_id not in self._event_columns():
            raise DefinitionError(f"aggregated view {name!r}: event_id {self.event_id!r} is not an event column")

    @property
    def join_keys_declared(self) -> set[str]:
        return set(self._join_key_dtypes or {}) | {k for e in self._entity_objs.values() for k in e.join_keys}

    def _event_columns(self) -> list[str]:
        return [f.name for f in self.schema if f.name not in self.join_keys_declared]

    @property
    def hop_us(self) -> int:
        return self.hop // US

    @property
    def stored_fields(self) -> list[Field]:
        return FeatureView.features.fget(self)  # type: ignore[attr-defined]

    @property
    def features(self) -> list[Field]:
        """The aggregation outputs (``last_k`` outputs are declared with their element dtype; values are lists)."""
        columns = {f.name: f.dtype for f in self.schema}
        return [Field(a.name, result_dtype(a.function, columns.get(a.column) if a.column else None),
                      description=f"{a.function}({a.column or '*'}) over {window_label(a.window)}, hop "
                                  f"{window_label(self.hop)}")
                for a in self.aggregations]

    def aggregation(self, output: str) -> Aggregation:
        for a in self.aggregations:
            if a.name == output:
                return a
        raise DefinitionError(f"aggregated view {self.name!r} has no aggregation {output!r}")

    @property
    def longest_window_us(self) -> int:
        return max(a.window_us for a in self.aggregations)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(aggregations=[a.to_dict() for a in self.aggregations], hop_us=self.hop_us, event_id=self.event_id)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AggregatedView":
        fv = cls._base_from_dict(d)
        fv.aggregations = [Aggregation.from_dict(a) for a in d["aggregations"]]
        fv.hop = timedelta(microseconds=d["hop_us"])
        fv.event_id = d.get("event_id")
        return fv

    def __repr__(self) -> str:
        return f"AggregatedView({self.name!r}, features={self.feature_names}, hop={window_label(self.hop)})"


# -- tile arithmetic (integer microseconds since the Unix epoch, UTC) ----------------------------------------------

def window_start_us(t_us: int, window_us: int, hop_us: int) -> int:
    """``floor_h(t - w)``: rows with ``start < event_timestamp <= t`` are in the window (left-open, right-closed)."""
    return ((t_us - window_us) // hop_us) * hop_us


def tile_of(event_us: int, hop_us: int) -> int:
    """Tile ``i`` is ``(i*h, (i+1)*h]``: an event exactly on a boundary belongs to the tile that ends there."""
    return -((-event_us) // hop_us) - 1
