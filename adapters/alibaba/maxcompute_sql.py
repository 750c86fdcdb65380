"""MaxCompute SQL as a sqlglot dialect, so ``pit.render``/``latest_per_entity`` render the one PIT definition for it.

sqlglot has no MaxCompute dialect. MaxCompute SQL 2.0 is Hive-like (backtick identifiers, ``ROW_NUMBER() OVER``,
CTEs, ``CREATE TABLE ... PARTITIONED BY``), so this is Hive with only what differs for skewless's tables:

* Instants are ``BIGINT`` microseconds since the epoch, UTC (see ``maxcompute_client.py``): MaxCompute's DATETIME is
  millisecond and it has no sub-second interval, so ``t - INTERVAL 'n' MICROSECOND`` (the TTL's lower bound) is the
  integer ``t - n``. Any other interval unit is refused loudly rather than rendered wrong.
* A derived table must have an alias (``FROM (SELECT ...) WHERE`` is a syntax error in MaxCompute): unaliased
  subqueries in FROM/JOIN get one.

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


class MaxComputeGenerator(HiveGenerator):
    TRANSFORMS = {
        **HiveGenerator.TRANSFORMS,
        exp.Interval: _interval_as_micros,
        # Hive's own SELECT rewrites still run, on the aliased tree.
        exp.Select: lambda self, e: HiveGenerator.TRANSFORMS[exp.Select](self, _alias_derived_tables(e)),
    }


class MaxCompute(Hive):
    Generator = MaxComputeGenerator
