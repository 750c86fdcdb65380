"""Spark SQL as a sqlglot dialect for what skewless renders: ``pit.render``, ``latest_per_entity``,
``aggregation.sql.render_training`` and ``aggregation.tile_sql`` are written once in DuckDB's spelling and transpiled.

sqlglot's own Spark dialect renders nearly all of it; this subclass adds the DuckDB functions it leaves unmapped,
each to a function of the Spark SQL reference (spark.apache.org/docs/latest/api/sql):

* ``epoch_us(t)`` is ``UNIX_MICROS(t)`` (the session time zone is UTC; instants are TIMESTAMP, i.e. LTZ).
* ``arg_max_null(v, o)`` is ``MAX_BY(v, o)``: rows with a null ``o`` are skipped, a null ``v`` is kept (checked on Spark in
  tests/adapters/spark/test_spark_s3_and_sql.py).
* ``arg_max(v, o, k)`` (the k newest, newest first) is ``TRANSFORM(SLICE(SORT_ARRAY(COLLECT_LIST(<o, v> or NULL),
  FALSE), 1, k), s -> s.v)``: COLLECT_LIST skips nulls, SORT_ARRAY sorts structs field by field (sqlglot refuses the
  count for Spark).
* ``error(m)`` is ``RAISE_ERROR(m)`` (the Int64 sum's range check raises; the engine turns it into the typed error).
* ``HUGEINT`` is ``DECIMAL(38, 0)`` (sums of Int64 are exact in it, then range-checked).
* ``var_samp`` stays ``VAR_SAMP`` (sqlglot writes ``VARIANCE``, the same in Spark, but the name says what is meant).

Importing this module registers the dialect under the name ``skewless_spark``.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.spark import Spark

_Generator = Spark.Generator


def _argmax(self, e: exp.ArgMax) -> str:
    value, order, k = e.this, e.expression, e.args.get("count")
    if k is None:
        return self.func("MAX_BY", value, order)
    pair = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("o"), expression=order.copy()),
                                   exp.PropertyEQ(this=exp.to_identifier("v"), expression=value)])
    element = exp.Case(ifs=[exp.If(this=exp.Is(this=order, expression=exp.Null()), true=exp.Null())], default=pair)
    newest = self.func("SORT_ARRAY", self.func("COLLECT_LIST", element), exp.false())
    return f"TRANSFORM({self.func('SLICE', newest, exp.Literal.number(1), k)}, __s -> __s.v)"


class SparkSkewlessGenerator(_Generator):
    TYPE_MAPPING = {**_Generator.TYPE_MAPPING, exp.DataType.Type.INT128: "DECIMAL(38, 0)"}
    TRANSFORMS = {
        **_Generator.TRANSFORMS,
        exp.ArgMax: _argmax,
        exp.Variance: lambda self, e: self.func("VAR_SAMP", e.this),
    }

    def anonymous_sql(self, e: exp.Anonymous) -> str:
        name, args = e.name.lower(), e.expressions
        if name == "epoch_us" and len(args) == 1:
            return self.func("UNIX_MICROS", args[0])
        if name == "arg_max_null" and len(args) == 2:
            return self.func("MAX_BY", args[0], args[1])
        if name == "error" and len(args) == 1:
            return self.func("RAISE_ERROR", args[0])
        return super().anonymous_sql(e)


class SparkSkewless(Spark):
    Generator = SparkSkewlessGenerator
