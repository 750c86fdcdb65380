"""MaxCompute SQL -> DuckDB for the local MaxCompute emulator (``maxcompute_emulator``): types, the statement
subset, and the function translations. Everything outside the subset raises ``SqlError`` (a failed instance with an
``ODPS-...`` message), never a guess: a function whose DuckDB namesake means something else must not slip through.

Parsing is sqlglot's Hive dialect (the closest to MaxCompute SQL 2.0) with MaxCompute's own date functions replaced
by builders that emit DuckDB expressions with MaxCompute's meaning. The time zone of all date arithmetic is UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from odps import types as odps_types
from odps.utils import split_sql_by_semicolon
from sqlglot import exp
from sqlglot.dialects.hive import Hive

# ODPS error codes pyodps maps to exception classes (ParseError, NoSuchTable, ...).
PARSE_ERROR, SEMANTIC_ERROR, NO_SUCH_TABLE = "ODPS-0130161", "ODPS-0130071", "ODPS-0130131"
ALREADY_EXISTS, RUNTIME_ERROR = "ODPS-0130211", "ODPS-0121095"


class SqlError(Exception):
    def __init__(self, code: str, title: str, detail: str):
        super().__init__(f"{code}:{title} - {detail}")
        self.code, self.title, self.detail = code, title, detail


def unsupported(what: str) -> SqlError:
    return SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                    f"{what} is not supported by the local MaxCompute emulator (see skewless.localcloud."
                    "maxcompute_emulator for the supported subset)")


# -- types ------------------------------------------------------------------------------------------------------
# DATETIME is millisecond precision and TIMESTAMP nanosecond precision in MaxCompute: the DuckDB types keep exactly
# that (TIMESTAMP_MS / TIMESTAMP_NS). Values are UTC wall times.
_DUCK = {"bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE",
         "float": "FLOAT", "string": "VARCHAR", "boolean": "BOOLEAN", "datetime": "TIMESTAMP_MS",
         "timestamp": "TIMESTAMP_NS", "timestamp_ntz": "TIMESTAMP_NS", "date": "DATE", "binary": "BLOB"}


def normalize_type(text: str) -> str:
    """A MaxCompute type name in pyodps's canonical spelling; complex types are rejected."""
    try:
        t = odps_types.validate_data_type(text.strip())
    except Exception as exc:  # noqa: BLE001 - pyodps raises ValueError/TypeError alike
        raise SqlError(PARSE_ERROR, "Parse exception", f"invalid type {text!r}") from exc
    duck_type(str(t).lower())
    return str(t).lower()


def duck_type(mc_type: str) -> str:
    t = odps_types.validate_data_type(mc_type)
    if isinstance(t, odps_types.Decimal):
        p, s = t.precision or 38, t.scale if t.scale is not None else 18
        if p > 38:
            raise unsupported(f"DECIMAL precision {p} (DuckDB stops at 38)")
        return f"DECIMAL({p},{s})"
    if isinstance(t, (odps_types.Varchar, odps_types.Char)):
        return "VARCHAR"
    name = str(t).lower()
    if name not in _DUCK:
        raise unsupported(f"type {name.upper()}")
    return _DUCK[name]


def mc_type_of(duck: str) -> str:
    """The MaxCompute type of a DuckDB result column (the Arrow values are cast to it afterwards)."""
    d = duck.upper()
    if d.endswith("[]"):  # a LIST: MaxCompute's ARRAY (the tunnel sends it as an Arrow list)
        return f"array<{mc_type_of(duck[:-2])}>"
    fixed = {"BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "smallint", "TINYINT": "tinyint", "DOUBLE": "double",
             "FLOAT": "float", "VARCHAR": "string", "BOOLEAN": "boolean", "TIMESTAMP_MS": "datetime",
             "TIMESTAMP_S": "datetime", "TIMESTAMP_NS": "timestamp", "TIMESTAMP": "timestamp",
             "TIMESTAMP WITH TIME ZONE": "timestamp", "DATE": "date", "BLOB": "binary",
             # SUM(BIGINT) is HUGEINT in DuckDB, BIGINT in MaxCompute; an untyped NULL is a BIGINT NULL
             "HUGEINT": "bigint", "UBIGINT": "bigint", "UINTEGER": "bigint", "USMALLINT": "int", "UTINYINT": "smallint",
             '"NULL"': "bigint", "NULL": "bigint"}
    if d in fixed:
        return fixed[d]
    m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", d)
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    raise unsupported(f"a result column of DuckDB type {duck}")


# -- functions ----------------------------------------------------------------------------------------------------
_UNITS = {"yyyy": "year", "year": "year", "mm": "month", "month": "month", "mon": "month", "dd": "day",
          "day": "day", "hh": "hour", "hour": "hour", "mi": "minute", "minute": "minute", "ss": "second",
          "second": "second", "ff3": "millisecond", "millisecond": "millisecond"}
_FORMAT = [("yyyy", "%Y"), ("mm", "%m"), ("dd", "%d"), ("hh", "%H"), ("mi", "%M"), ("ss", "%S"), ("ff3", "%g")]


def _mc(node: exp.Expression) -> exp.Expression:
    node.meta["mc"] = True  # emitted by a builder below: DuckDB spelling with MaxCompute meaning
    return node


def _fn(name: str, *args) -> exp.Expression:
    return _mc(exp.Anonymous(this=name, expressions=list(args)))


def _cast(e: exp.Expression, to: str) -> exp.Expression:
    dtype = {"TIMESTAMP_MS": exp.DataType(this=exp.DataType.Type.TIMESTAMP_MS),
             "TIMESTAMP_NS": exp.DataType(this=exp.DataType.Type.TIMESTAMP_NS)}.get(to) or exp.DataType.build(to)
    return _mc(exp.Cast(this=e, to=dtype))


def _unit(name: str, arg: exp.Expression) -> str:
    if not isinstance(arg, exp.Literal) or not arg.is_string or arg.this.lower() not in _UNITS:
        raise unsupported(f"{name} with date part {arg.sql()} (use one of {', '.join(sorted(_UNITS))})")
    return _UNITS[arg.this.lower()]


def _format(name: str, arg: exp.Expression) -> exp.Expression:
    if not isinstance(arg, exp.Literal) or not arg.is_string:
        raise unsupported(f"{name} with a non-literal format")
    fmt = arg.this
    for mc, duck in _FORMAT:
        fmt = re.sub(mc, duck, fmt, flags=re.IGNORECASE)
    return exp.Literal.string(fmt)


def _arity(name: str, args: list, *allowed: int) -> None:
    if len(args) not in allowed:
        raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                       f"function {name} takes {' or '.join(map(str, allowed))} arguments, got {len(args)}")


def _dateadd(args):
    _arity("DATEADD", args, 3)
    return exp.Add(this=args[0], expression=_fn(f"to_{_unit('DATEADD', args[2])}s", args[1]))


def _datediff(args):
    _arity("DATEDIFF", args, 3)  # DATEDIFF(end, start, unit) = end - start in whole units crossed
    return _fn("date_diff", exp.Literal.string(_unit("DATEDIFF", args[2])), args[1], args[0])


def _datetrunc(args):
    _arity("DATETRUNC", args, 2)
    return _fn("date_trunc", exp.Literal.string(_unit("DATETRUNC", args[1])), args[0])


def _to_millis(args):
    _arity("TO_MILLIS", args, 1)
    return _fn("epoch_ms", args[0])


def _from_unixtime(args):
    _arity("FROM_UNIXTIME", args, 1)  # seconds -> DATETIME
    return _cast(_fn("make_timestamp", exp.Mul(this=_cast(args[0], "BIGINT"), expression=exp.Literal.number(10**6))),
                 "TIMESTAMP_MS")


def _unix_timestamp(args):
    _arity("UNIX_TIMESTAMP", args, 0, 1)
    arg = args[0] if args else _mc(exp.CurrentTimestamp())
    return _cast(_fn("floor", _fn("epoch", arg)), "BIGINT")


def _getdate(args):
    _arity("GETDATE", args, 0)
    return _cast(_mc(exp.CurrentTimestamp()), "TIMESTAMP_MS")


def _to_date(args):
    _arity("TO_DATE", args, 1, 2)
    if len(args) == 1:
        return _cast(args[0], "DATE")
    return _cast(_fn("strptime", args[0], _format("TO_DATE", args[1])), "TIMESTAMP_MS")


def _to_char(args):
    _arity("TO_CHAR", args, 1, 2)
    if len(args) == 1:
        return _cast(args[0], "VARCHAR")
    return _fn("strftime", args[0], _format("TO_CHAR", args[1]))


def _part(name):
    def build(args):
        _arity(name, args, 1)
        return _cast(_fn("date_part", exp.Literal.string(name.lower()), args[0]), "INT")
    return build


def _isnan(args):
    _arity("ISNAN", args, 1)  # false (not NULL) for NULL; other types are read as DOUBLE
    return _mc(exp.Coalesce(this=_fn("isnan", _cast(args[0], "DOUBLE")), expressions=[exp.false()]))


def _var_samp(args):
    _arity("VAR_SAMP", args, 1)
    return _fn("var_samp", args[0])


def _arg_max(args):
    _arity("ARG_MAX", args, 2)  # ARG_MAX(valueToMaximize, valueToReturn): rows with a NULL first are skipped
    return _fn("arg_max_null", args[1], args[0])


def _collect_list(args):
    _arity("COLLECT_LIST", args, 1)  # NULLs are skipped; no value left: [] (as Hive; DuckDB's list gives NULL)
    kept = _mc(exp.Filter(this=_fn("list", args[0]),
                          expression=exp.Where(this=exp.Not(this=exp.Is(this=args[0].copy(), expression=exp.Null())))))
    return _mc(exp.Coalesce(this=kept, expressions=[_mc(exp.Array(expressions=[]))]))


def _sort_array(args):
    _arity("SORT_ARRAY", args, 1, 2)  # NULL is the least value
    asc = args[1] if len(args) == 2 else exp.true()
    if not isinstance(asc, exp.Boolean):
        raise unsupported("SORT_ARRAY with a non-literal order")
    order = ("ASC", "NULLS FIRST") if asc.this else ("DESC", "NULLS LAST")
    return _fn("list_sort", args[0], *map(exp.Literal.string, order))


def _slice(args):
    _arity("SLICE", args, 3)
    start = args[1]
    if not (isinstance(start, exp.Literal) and not start.is_string and int(start.this) >= 1):
        raise unsupported(f"SLICE from {start.sql()} (a literal start >= 1 only)")
    end = exp.Sub(this=exp.Add(this=start.copy(), expression=args[2]), expression=exp.Literal.number(1))
    return _fn("list_slice", args[0], start, end)


def _transform(args):
    _arity("TRANSFORM", args, 2)
    if not isinstance(args[1], exp.Lambda):
        raise unsupported("TRANSFORM with a function other than a lambda")
    return _fn("list_transform", args[0], args[1])


_BUILDERS = {"DATEADD": _dateadd, "DATEDIFF": _datediff, "DATETRUNC": _datetrunc, "TO_MILLIS": _to_millis,
             "FROM_UNIXTIME": _from_unixtime, "UNIX_TIMESTAMP": _unix_timestamp, "GETDATE": _getdate,
             "TO_DATE": _to_date, "TO_CHAR": _to_char, "ISNAN": _isnan, "VAR_SAMP": _var_samp, "ARG_MAX": _arg_max,
             "COLLECT_LIST": _collect_list, "SORT_ARRAY": _sort_array, "SLICE": _slice, "TRANSFORM": _transform,
             **{p: _part(p) for p in ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND")}}

# sqlglot function classes whose Hive reading rendered for DuckDB keeps MaxCompute's meaning (checked one by one).
# Left out on purpose: GREATEST/LEAST (NULL handling differs), STDDEV/VARIANCE (population in MaxCompute, sample in
# DuckDB: VAR_SAMP has its own builder), regular expressions (Java vs RE2 syntax). Struct is NAMED_STRUCT('f', v, ...),
# Array is ARRAY(v, ...).
_ALLOWED = {"Count", "Sum", "Avg", "Min", "Max", "RowNumber", "Rank", "DenseRank", "Lag", "Lead", "FirstValue",
            "LastValue", "Coalesce", "If", "Case", "Concat", "Substring", "Length", "Lower", "Upper", "Trim", "Abs",
            "Round", "Cast", "Pow", "Sqrt", "Ln", "Exp", "Nullif", "CurrentTimestamp",
            "StrPosition", "StddevPop", "StddevSamp", "VariancePop", "Exists", "Struct", "Array"}
SUPPORTED_FUNCTIONS = sorted([*_BUILDERS, "ABS", "AVG", "CASE", "CAST", "CEIL", "COALESCE", "CONCAT", "COUNT",
                              "CURRENT_TIMESTAMP", "DENSE_RANK", "ARRAY", "NAMED_STRUCT", "EXISTS", "EXP", "FIRST_VALUE", "FLOOR", "IF", "INSTR",
                              "LAG", "LAST_VALUE", "LEAD", "LENGTH", "LN", "LOWER", "MAX", "MIN", "NULLIF", "NVL",
                              "POW", "RANK", "ROUND", "ROW_NUMBER", "SQRT", "STDDEV_POP", "STDDEV_SAMP", "SUBSTR",
                              "SUM", "TRIM", "UPPER", "VAR_POP"])


class MaxCompute(Hive):
    class Parser(Hive.Parser):
        FUNCTIONS = {**Hive.Parser.FUNCTIONS, **_BUILDERS}
        # (a special parser, e.g. sqlglot's ARG_MAX, would win over the builder)
        FUNCTION_PARSERS = {k: v for k, v in Hive.Parser.FUNCTION_PARSERS.items() if k not in _BUILDERS}
        # TRANSFORM is the array function here (Hive's script TRANSFORM ... USING is not emulated)
        NO_PAREN_FUNCTION_PARSERS = {k: v for k, v in Hive.Parser.NO_PAREN_FUNCTION_PARSERS.items()
                                     if k not in _BUILDERS}


def _check_functions(tree: exp.Expression) -> None:
    for node in tree.find_all(exp.Func):
        if node.meta.get("mc") or isinstance(node, exp.Connector):  # AND/OR/XOR are operators, not functions
            continue
        name = node.name.upper() if isinstance(node, exp.Anonymous) else type(node).__name__
        if isinstance(node, exp.Anonymous) or name not in _ALLOWED:
            shown = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
            raise unsupported(f"function {shown}")


def _fix_types(tree: exp.Expression) -> exp.Expression:
    def strict(node):
        if isinstance(node, exp.TryCast) and not node.meta.get("mc"):
            return exp.Cast(this=node.this, to=node.to)  # MaxCompute's CAST fails loudly; Hive's returns NULL
        if isinstance(node, (exp.Floor, exp.Ceil)) and not node.meta.get("mc"):
            if len([v for v in node.args.values() if v is not None]) != 1:
                raise unsupported(f"{node.sql_name()} with more than one argument")
            return _cast(_mc(type(node)(this=node.this)), "BIGINT")  # BIGINT in MaxCompute, DOUBLE in DuckDB
        return node

    def types(node):
        if isinstance(node, exp.DataType):
            if node.this == exp.DataType.Type.DATETIME:
                return exp.DataType(this=exp.DataType.Type.TIMESTAMP_MS)
            if node.this == exp.DataType.Type.TIMESTAMP:
                return exp.DataType(this=exp.DataType.Type.TIMESTAMP_NS)
            if node.is_type(*exp.DataType.NESTED_TYPES):
                raise unsupported(f"type {node.sql('hive')}")
        return node
    return tree.transform(strict).transform(types)


# -- statements -------------------------------------------------------------------------------------------------
@dataclass
class Column:
    name: str
    type: str  # MaxCompute spelling, e.g. "bigint", "decimal(18,6)"
    comment: str = ""


@dataclass
class Statement:
    kind: str  # create | ctas | drop | add_columns | add_partitions | drop_partitions | truncate | insert | query
    table: str = ""
    columns: list[Column] = field(default_factory=list)
    partition_columns: list[Column] = field(default_factory=list)
    comment: str = ""
    if_exists: bool = False  # IF NOT EXISTS for create/add, IF EXISTS for drop
    partitions: list[dict[str, str]] = field(default_factory=list)  # static specs
    dynamic: list[str] = field(default_factory=list)  # dynamic partition columns of an INSERT
    overwrite: bool = False
    query: str = ""  # DuckDB SQL of the SELECT part
    tables: set[str] = field(default_factory=set)  # tables the query reads


_SET = re.compile(r"^\s*set\s+([\w.]+)\s*=\s*(.*)$", re.IGNORECASE | re.DOTALL)
_NAME = r"(?P<table>[`\w.]+)"
_PART = re.compile(r"partition\s*\(([^)]*)\)", re.IGNORECASE)
_ALTER = re.compile(rf"^\s*alter\s+table\s+{_NAME}\s+(?P<op>add|drop)\s+(?P<ine>if\s+(not\s+)?exists\s+)?"
                    r"(?P<parts>(partition\s*\([^)]*\)\s*,?\s*)+)$", re.IGNORECASE | re.DOTALL)
_TRUNCATE = re.compile(rf"^\s*truncate\s+table\s+{_NAME}\s*(?P<parts>partition\s*\([^)]*\))?\s*$",
                       re.IGNORECASE | re.DOTALL)
_ADD_COLUMNS = re.compile(rf"^\s*alter\s+table\s+{_NAME}\s+add\s+columns\s*(?P<ine>if\s+not\s+exists\s*)?"
                          r"\((?P<cols>.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_LIFECYCLE = re.compile(r"\blifecycle\s+\d+\b", re.IGNORECASE)
_KV = re.compile(r"\s*([`\w]+)\s*=\s*('(?:[^']|'')*'|\"[^\"]*\"|[\w.:+-]+)\s*")


def parse_spec(text: str) -> dict[str, str]:
    """``ds='2024-01-01', hh=1`` (SQL) or ``ds=2024-01-01,hh=1`` (tunnel) -> {"ds": "2024-01-01", "hh": "1"}."""
    spec = {}
    for part in (p for p in text.split(",") if p.strip()):
        m = _KV.fullmatch(part)
        if not m:
            raise SqlError(PARSE_ERROR, "Parse exception", f"invalid partition spec {text!r}")
        value = m.group(2)
        if value[:1] in ("'", '"'):
            value = value[1:-1].replace("''", "'")
        spec[m.group(1).strip("`").lower()] = value
    return spec


def table_name(raw: str, project: str) -> str:
    parts = [p.strip("`").lower() for p in raw.split(".")]
    if len(parts) == 2 and parts[0] == project.lower():
        parts = parts[1:]
    if len(parts) != 1:
        raise unsupported(f"table reference {raw} (only tables of the current project {project}, no schemas)")
    return parts[0]


def _table(t: exp.Table, project: str) -> str:
    if t.catalog or (t.db and t.db.lower() != project.lower()):
        raise unsupported(f"table reference {t.sql('hive')} (only tables of the current project {project})")
    return t.name.lower()


def _columns(defs, what: str) -> list[Column]:
    cols = []
    for d in defs:
        if not isinstance(d, exp.ColumnDef) or d.args.get("kind") is None:
            raise unsupported(f"{what} item {d.sql('hive')}")
        comment = ""
        for c in d.args.get("constraints") or []:
            if isinstance(c.kind, exp.CommentColumnConstraint):
                comment = c.kind.this.this
            elif not isinstance(c.kind, exp.NotNullColumnConstraint):
                raise unsupported(f"column constraint {c.sql('hive')}")
        kind = d.args["kind"]  # Hive spells DATETIME as TIMESTAMP: keep MaxCompute's distinction
        text = "datetime" if kind.this == exp.DataType.Type.DATETIME else kind.sql("hive")
        cols.append(Column(d.name.lower(), normalize_type(text), comment))
    return cols


def _query(tree: exp.Expression, project: str) -> tuple[str, set[str]]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = set()
    for t in list(tree.find_all(exp.Table)):
        if not t.db and t.name.lower() in ctes:
            continue
        if not t.name:
            raise unsupported(f"table expression {t.sql('hive')}")
        name = _table(t, project)
        tables.add(name)
        t.set("db", None)
        t.set("this", exp.to_identifier(name, quoted=True))
    tree = _fix_types(tree)
    _check_functions(tree)
    return tree.sql("duckdb"), tables


def _create(tree: exp.Create, project: str) -> Statement:
    if tree.kind != "TABLE" or tree.args.get("replace") or tree.args.get("temporary"):
        raise unsupported(f"CREATE {tree.kind}" + (" OR REPLACE" if tree.args.get("replace") else ""))
    st = Statement("create", if_exists=bool(tree.args.get("exists")))
    target = tree.this
    for prop in (tree.args.get("properties").expressions if tree.args.get("properties") else []):
        if isinstance(prop, exp.PartitionedByProperty):
            st.partition_columns = _columns(prop.this.expressions, "PARTITIONED BY")
        elif isinstance(prop, exp.SchemaCommentProperty):
            st.comment = prop.this.this
        else:
            raise unsupported(f"table property {prop.sql('hive')}")
    if isinstance(target, exp.Schema):
        st.table, st.columns = _table(target.this, project), _columns(target.expressions, "column")
    else:
        st.table = _table(target, project)
    if tree.expression is not None:
        if st.columns or st.partition_columns:
            raise unsupported("CREATE TABLE ... AS SELECT with a column list or PARTITIONED BY")
        st.kind = "ctas"
        st.query, st.tables = _query(tree.expression, project)
    elif not st.columns:
        raise SqlError(PARSE_ERROR, "Parse exception", "CREATE TABLE needs a column list or AS SELECT")
    return st


def _insert(tree: exp.Insert, project: str) -> Statement:
    target = tree.this
    if not isinstance(target, exp.Table):
        raise unsupported("INSERT with a column list")
    st = Statement("insert", table=_table(target, project), overwrite=bool(tree.args.get("overwrite")))
    part = target.args.get("partition")
    spec: dict[str, str] = {}
    for e in (part.expressions if part else []):
        if isinstance(e, exp.EQ) and isinstance(e.expression, exp.Literal):
            if st.dynamic:
                raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                               "static partition columns must come before dynamic ones")
            spec[e.this.name.lower()] = e.expression.this
        elif isinstance(e, exp.Column):
            st.dynamic.append(e.name.lower())
        else:
            raise unsupported(f"partition clause item {e.sql('hive')}")
    st.partitions = [spec] if spec else []
    if not isinstance(tree.expression, exp.Query):
        raise unsupported("INSERT ... VALUES (use INSERT ... SELECT, or the tunnel)")
    st.query, st.tables = _query(tree.expression, project)
    return st


def plan(sql: str, project: str) -> tuple[list[Statement], dict[str, str]]:
    """The statements of one SQL task (``SET k=v;`` lines are returned as settings and otherwise ignored)."""
    statements, settings = [], {}
    for text in split_sql_by_semicolon(sql):
        text = text.strip().rstrip(";").strip()
        if not text:
            continue
        m = _SET.match(text)
        if m:
            settings[m.group(1)] = m.group(2).strip()
            continue
        statements.append(_statement(text, project))
    if not statements:
        raise SqlError(PARSE_ERROR, "Parse exception", "no statement to run")
    return statements, settings


def _statement(text: str, project: str) -> Statement:
    m = _ALTER.match(text)
    if m:
        specs = [parse_spec(p) for p in _PART.findall(m.group("parts"))]
        kind = "add_partitions" if m.group("op").lower() == "add" else "drop_partitions"
        return Statement(kind, table=table_name(m.group("table"), project), partitions=specs,
                         if_exists=bool(m.group("ine")))
    m = _ADD_COLUMNS.match(text)
    if m:
        try:
            defs = sqlglot.parse_one(f"CREATE TABLE t ({m.group('cols')})", dialect=MaxCompute).this.expressions
        except sqlglot.errors.ParseError as exc:
            raise SqlError(PARSE_ERROR, "Parse exception", str(exc).splitlines()[0]) from exc
        return Statement("add_columns", table=table_name(m.group("table"), project), columns=_columns(defs, "column"),
                         if_exists=bool(m.group("ine")))
    m = _TRUNCATE.match(text)
    if m:
        specs = [parse_spec(p) for p in _PART.findall(m.group("parts") or "")]
        return Statement("truncate", table=table_name(m.group("table"), project), partitions=specs)
    if re.match(r"^\s*create\s+table\b", text, re.IGNORECASE):
        text = _LIFECYCLE.sub(" ", text)  # LIFECYCLE n is accepted and ignored: tables here never expire
    try:
        tree = sqlglot.parse_one(text, dialect=MaxCompute)
    except SqlError:
        raise
    except sqlglot.errors.ParseError as exc:
        raise SqlError(PARSE_ERROR, "Parse exception", str(exc).splitlines()[0]) from exc
    if isinstance(tree, exp.Create):
        return _create(tree, project)
    if isinstance(tree, exp.Drop):
        tables = tree.args.get("tables") or []
        if tree.kind != "TABLE" or len(tables) != 1:
            raise unsupported(f"DROP {tree.kind}")
        return Statement("drop", table=_table(tables[0], project), if_exists=bool(tree.args.get("exists")))
    if isinstance(tree, exp.Insert):
        return _insert(tree, project)
    if isinstance(tree, exp.Query):
        query, tables = _query(tree, project)
        return Statement("query", query=query, tables=tables)
    raise unsupported(f"statement {' '.join(text.split()[:3])!r}")
