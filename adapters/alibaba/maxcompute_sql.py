"""MaxCompute SQL as a sqlglot dialect, so ``pit.render``/``latest_per_entity`` render the one PIT definition for it.

sqlglot has no MaxCompute dialect. MaxCompute SQL 2.0 is Hive-like (backtick identifiers, ``ROW_NUMBER() OVER``,
CTEs, ``CREATE TABLE ... PARTITIONED BY``), so this is Hive with only what differs for skewless's tables:

* Instants are ``BIGINT`` microseconds since the epoch, UTC (see ``maxcompute_client.py``): MaxCompute's DATETIME is
  millisecond and it has no sub-second interval, so ``t - INTERVAL 'n' MICROSECOND`` (the TTL's lower bound) is the
  integer ``t - n``. Any other interval unit is refused loudly rather than rendered wrong.
* A derived table must have an alias (``FROM (SELECT ...) WHERE`` is a syntax error in MaxCompute): unaliased
  subqueries in FROM/JOIN get one.
* The aggregations of training sets (``aggregation/sql.py``, DuckDB spelling) in MaxCompute's own functions, each
  documented by Alibaba Cloud (help/en/maxcompute/...): ``epoch_us(t)`` is ``t`` (instants already are microseconds);
  ``var_samp``/``stddev_samp`` stay sample statistics (``VAR_SAMP``, ``STDDEV_SAMP``: MaxCompute's ``VARIANCE`` is
  the population variance, so sqlglot's Hive spelling would be wrong); ``isnan`` is ``ISNAN``; ``arg_max_null(v, o)``
  is ``ARG_MAX(o, v)`` (arguments swapped; rows with a null ``o`` are skipped, a null ``v`` is kept); the k newest of
  ``arg_max(v, o, k)`` are ``TRANSFORM(SLICE(SORT_ARRAY(COLLECT_LIST(<o, v> or NULL), FALSE), 1, k), s -> s.v)``
  (COLLECT_LIST skips nulls; SORT_ARRAY sorts structs field by field); a struct literal is ``NAMED_STRUCT``; an
  empty typed array is ``SLICE(ARRAY(CAST(NULL AS T)), 1, 0)``; ``HUGEINT`` is ``DECIMAL(38,0)``.
* MaxCompute has no function that raises: a ``CASE`` whose branch calls ``error(...)`` (the Int64 sum's range check)
  yields the unchecked value (a DECIMAL(38,0) sum) and the engine checks the range after download (``maxcompute.py``).

Importing this module registers the dialect under the name ``maxcompute`` (sqlglot's ``read=``/``write=``).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.hive import Hive
from sqlglot.errors import UnsupportedError
from sqlglot.generators.hive import HiveGenerator

# The one unit an instant is stored in: an interval in it is a plain number of those units.
_INSTANT_UNIT = "MICROSECOND"


def _interval_as_micros(self: HiveGenerator, e: exp.Interval) -> str:
    unit = e.args.get("unit")
    unit = unit.name.upper() if unit is not None else ""
    if unit.rstrip("S") != _INSTANT_UNIT or not e.this.name.lstrip("-").isdigit():
        raise UnsupportedError(f"MaxCompute instants are epoch microseconds: cannot render interval {e.sql()}")
    return str(int(e.this.name))


def _alias_derived_tables(expression: exp.Expression) -> exp.Expression:
    for i, sub in enumerate(expression.find_all(exp.Subquery)):
        if not sub.alias and isinstance(sub.parent, (exp.From, exp.Join)):
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_d{i}")))
    return expression


def _named_struct(self: HiveGenerator, e: exp.Struct) -> str:
    args = []
    for field in e.expressions:
        if not isinstance(field, exp.PropertyEQ):
            raise UnsupportedError(f"MaxCompute structs need field names: cannot render {e.sql()}")
        args += [exp.Literal.string(field.name), field.expression]
    return self.func("NAMED_STRUCT", *args)


def _is_error(e: exp.Expression | None) -> bool:
    return isinstance(e, exp.Anonymous) and e.name.lower() == "error"


def _unchecked(self: HiveGenerator, e: exp.Case) -> str:
    """A CASE that raises in a branch: the value of its ELSE without the final cast (see the module docstring)."""
    if not any(_is_error(i.args.get("true")) for i in e.args.get("ifs") or []):
        return self.case_sql(e)
    default = e.args.get("default")
    if default is None or any(_is_error(n) for n in default.find_all(exp.Anonymous)):
        raise UnsupportedError(f"MaxCompute has no function that raises: cannot render {e.sql()}")
    return self.sql(default.this if isinstance(default, exp.Cast) else default)


def _empty_array(self: HiveGenerator, e: exp.Cast) -> str:
    to = e.to
    if isinstance(e.this, exp.Array) and not e.this.expressions and to.is_type(exp.DataType.Type.ARRAY):
        element = exp.Cast(this=exp.Null(), to=to.expressions[0])
        return self.func("SLICE", exp.Array(expressions=[element]), exp.Literal.number(1), exp.Literal.number(0))
    return self.cast_sql(e)


class MaxComputeGenerator(HiveGenerator):
    TYPE_MAPPING = {**HiveGenerator.TYPE_MAPPING, exp.DataType.Type.INT128: "DECIMAL(38, 0)"}
    TRANSFORMS = {
        **HiveGenerator.TRANSFORMS,
        exp.Interval: _interval_as_micros,
        exp.Struct: _named_struct,
        exp.Case: _unchecked,
        exp.Cast: _empty_array,
        exp.Variance: lambda self, e: self.func("VAR_SAMP", e.this),
        exp.IsNan: lambda self, e: self.func("ISNAN", e.this),
        exp.ArgMax: lambda self, e: self.argmax_sql(e),  # (Hive's own drops the count)
        # Hive's own SELECT rewrites still run, on the aliased tree.
        exp.Select: lambda self, e: HiveGenerator.TRANSFORMS[exp.Select](self, _alias_derived_tables(e)),
    }


    def anonymous_sql(self, e: exp.Anonymous) -> str:
        name, args = e.name.lower(), e.expressions
        if name == "epoch_us" and len(args) == 1:
            return self.sql(args[0])  # instants are BIGINT epoch microseconds already
        if name == "arg_max_null" and len(args) == 2:
            return self.func("ARG_MAX", args[1], args[0])
        return super().anonymous_sql(e)

    def argmax_sql(self, e: exp.ArgMax) -> str:
        """DuckDB's ``arg_max(v, o[, k])``: the ``v`` of the greatest non-null ``o`` (of the k greatest, greatest
        first, as a list)."""
        value, order, k = e.this, e.expression, e.args.get("count")
        if k is None:
            return self.func("ARG_MAX", order, value)  # (a null ``v`` is kept: callers filter it in ``o``)
        pair = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("o"), expression=order.copy()),
                                       exp.PropertyEQ(this=exp.to_identifier("v"), expression=value)])
        element = exp.Case(ifs=[exp.If(this=exp.Is(this=order, expression=exp.Null()), true=exp.Null())],
                           default=pair)
        newest = self.func("SORT_ARRAY", self.func("COLLECT_LIST", element), exp.false())
        return (f"TRANSFORM({self.func('SLICE', newest, exp.Literal.number(1), k)}, "
                f"__s -> __s.v)")


class MaxCompute(Hive):
    Generator = MaxComputeGenerator
