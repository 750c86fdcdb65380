"""Feature value types and their Arrow / DuckDB / SQLite equivalents.

The set is small on purpose: every type here must round-trip through every offline engine and online store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from .errors import DefinitionError


@dataclass(frozen=True)
class DType:
    name: str
    arrow: pa.DataType
    sql: str  # DuckDB / ANSI type name used when casting

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def __reduce_ex__(self, protocol):
        # Code compares types by identity (``dt is String``), so a type pickled to another process (a view sent to
        # Spark's executors) must come back as that process's own instance, not an equal copy.
        if ALL.get(self.name) is self:
            return by_name, (self.name,)
        return super().__reduce_ex__(protocol)


Int32 = DType("Int32", pa.int32(), "INTEGER")
Int64 = DType("Int64", pa.int64(), "BIGINT")
Float32 = DType("Float32", pa.float32(), "REAL")
Float64 = DType("Float64", pa.float64(), "DOUBLE")
String = DType("String", pa.string(), "VARCHAR")
Bool = DType("Bool", pa.bool_(), "BOOLEAN")
Bytes = DType("Bytes", pa.binary(), "BLOB")
UnixTimestamp = DType("UnixTimestamp", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ")

ALL: dict[str, DType] = {t.name: t for t in (Int32, Int64, Float32, Float64, String, Bool, Bytes, UnixTimestamp)}


def by_name(name: str) -> DType:
    try:
        return ALL[name]
    except KeyError:
        raise DefinitionError(f"unknown dtype {name!r}; known: {', '.join(ALL)}") from None


def arrow_compatible(actual: pa.DataType, declared: DType) -> bool:
    """Whether an input column of type ``actual`` can be stored losslessly as ``declared``."""
    if pa.types.is_null(actual):
        return True
    if declared in (Int32, Int64):
        return pa.types.is_integer(actual)
    if declared in (Float32, Float64):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual) or pa.types.is_decimal(actual)
    if declared is String:
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_string_view(actual)
    if declared is Bytes:
        return pa.types.is_binary(actual) or pa.types.is_large_binary(actual)
    if declared is Bool:
        return pa.types.is_boolean(actual)
    if declared is UnixTimestamp:
        return pa.types.is_timestamp(actual) or pa.types.is_date(actual)
    return False
