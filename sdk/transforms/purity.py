"""The purity rule of on-demand transforms (spec ``transformations.md`` section 2), checked on the source.

A transform may not read the clock, the network, files or global state. Python cannot prove that in general, so
the rule is a whitelist, checked on the function's syntax tree at definition (and again whenever a registry copy
is loaded), and enforced at run time by running the code in a namespace that holds nothing else:

1. The transform is one plain ``def`` with exactly one parameter (the batch or the row), no defaults, no
   ``*args``/``**kwargs``. Decorators and annotations are dropped (they are evaluated where it is defined, not
   where it runs).
2. Its body has no ``import``, ``global``, ``nonlocal``, ``class``, ``async``, ``await``, ``yield``.
3. Every name it reads is one it binds itself (parameters, assignments, loop and comprehension variables, nested
   ``def``/``lambda``), a safe builtin (``SAFE_BUILTINS``: pure functions, types and exceptions; no ``open``,
   ``print``, ``input``, ``eval``, ``exec``, ``getattr``, ``globals``, ``__import__``...) or one of the allowed
   libraries (``ALLOWED_MODULES``: ``math``, ``np``/``numpy``, ``pd``/``pandas``, ``pa``/``pc`` for pyarrow and
   pyarrow.compute). Anything else (``time``,
   ``datetime``, ``random``, ``os``, ``sys``, ``socket``, ``requests``, ``urllib``, a module-level constant or
   helper of the repo file) is rejected: the stored source must be all that decides the output.
4. No attribute whose name starts with ``_`` (no ``__globals__``/``__class__`` escapes) or is in
   ``FORBIDDEN_ATTRIBUTES`` (the clock: ``now``, ``today``, ``utcnow``; randomness: ``random``; files:
   ``read_*``, ``write_*``, ``to_csv``, ``load``, ``save``, pyarrow's ``OSFile``, ``memory_map``, ``ipc``,
   ``parquet``...; global settings: ``set_*``, ``options``, ``seterr``), and no
   assignment to an attribute of a library (``np.x = ...``).
5. No string literal ``"now"`` or ``"today"`` (``pd.Timestamp("now")``, ``np.datetime64("today")`` read the clock).

A transform that needs time declares a time input instead (``time="..."``): the entity row's timestamp offline,
the request time online.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import textwrap
from typing import Callable

import numpy
import pandas
import pyarrow
import pyarrow.compute

from ..errors import DefinitionError

ALLOWED_MODULES = {"math": math, "np": numpy, "numpy": numpy, "pd": pandas, "pandas": pandas, "pa": pyarrow,
                   "pc": pyarrow.compute}

SAFE_BUILTINS = {n: getattr(builtins, n) for n in (
    "abs", "all", "any", "bool", "bytes", "callable", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "hash", "int", "isinstance", "issubclass", "len", "list", "map", "max", "min", "pow", "range", "repr",
    "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError", "LookupError", "OverflowError",
    "TypeError", "ValueError", "ZeroDivisionError")}

FORBIDDEN_ATTRIBUTES = {
    "now", "today", "utcnow", "random", "default_rng", "RandomState", "seed",
    "load", "loads", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt", "fromfile", "tofile",
    "memmap", "DataSource", "io", "ctypeslib", "testing", "show_config", "set_option", "reset_option", "options",
    "option_context", "seterr", "setbufsize", "set_printoptions",
    # pyarrow's files, streams, memory maps and process-wide settings
    "OSFile", "PythonFile", "memory_map", "create_memory_map", "input_stream", "output_stream", "ipc", "parquet",
    "csv", "json", "feather", "dataset", "fs", "orc", "flight", "cuda", "substrait", "jemalloc_set_decay_ms",
    "log_memory_allocations", "register_extension_type", "unregister_extension_type", "call_function",
    "register_scalar_function", "register_aggregate_function", "register_tabular_function",
    "register_vector_function",
}
_FORBIDDEN_PREFIXES = ("read_", "set_", "write_", "to_csv", "to_parquet", "to_pickle", "to_json", "to_sql", "to_excel", "to_feather",
                       "to_hdf", "to_clipboard", "to_html", "to_latex", "to_markdown", "to_stata", "to_orc", "to_xml",
                       "to_gbq", "to_string")
# Why a name that is not allowed is refused, for the names users reach for most.
_WHY = {**{n: "reads the clock" for n in ("time", "datetime", "date", "timezone", "timedelta")},
        **{n: "is not deterministic" for n in ("random", "uuid", "secrets")},
        **{n: "does I/O" for n in ("os", "sys", "socket", "open", "requests", "urllib", "http", "print", "input",
                                   "subprocess", "pathlib", "Path", "shutil", "logging", "sqlite3")},
        **{n: "escapes the sandbox" for n in ("eval", "exec", "compile", "globals", "locals", "vars", "getattr",
                                              "setattr", "delattr", "__import__", "__builtins__")}}
_FORBIDDEN_NODES = {ast.Import: "imports", ast.ImportFrom: "imports", ast.Global: "global statements",
                    ast.Nonlocal: "nonlocal statements", ast.ClassDef: "class definitions",
                    ast.AsyncFunctionDef: "async functions", ast.Await: "await", ast.Yield: "yield",
                    ast.YieldFrom: "yield"}


def source_of(fn: Callable, name: str) -> str:
    """The function's normalised source: its ``def`` alone (no decorators, no annotations), as ``ast.unparse``
    writes it, so formatting and comments do not change the hash."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise DefinitionError(f"transform {name!r}: its source code cannot be read ({exc}); define it with `def` in "
                              "a file of the repo") from None
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise DefinitionError(f"transform {name!r}: its source does not parse on its own ({exc.msg}); "
                              "define it with `def` in a file of the repo") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(defs) != 1:
        raise DefinitionError(f"transform {name!r}: define it with one plain `def` (not a lambda or async def)")
    return normalise(defs[0])


def normalise(fd: ast.FunctionDef) -> str:
    fd.decorator_list = []
    fd.returns = None
    for a in fd.args.posonlyargs + fd.args.args + fd.args.kwonlyargs:
        a.annotation = None
    return ast.unparse(fd)


def check(source: str, name: str) -> str:
    """Apply the rule to ``source`` (one ``def``); returns the function's name. DefinitionError naming the
    transform, the line and what is refused."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise DefinitionError(f"transform {name!r}: stored source does not parse ({exc.msg})") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        raise DefinitionError(f"transform {name!r}: the source must be exactly one `def`")
    fd = tree.body[0]
    a = fd.args
    if len(a.posonlyargs) + len(a.args) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
        raise DefinitionError(f"transform {name!r}: {fd.name}() must take exactly one parameter (the batch, or the "
                              "row in row mode), without defaults, *args or **kwargs")

    def refuse(node: ast.AST, what: str) -> DefinitionError:
        return DefinitionError(f"transform {name!r} is not pure: line {getattr(node, 'lineno', '?')} {what} "
                               "(a transform may not read the clock, do I/O or touch global state; declare a time "
                               "input for the row's time)")

    bound: set[str] = set()
    for node in ast.walk(fd):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef) and node is not fd:
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    for node in ast.walk(fd):
        kind = _FORBIDDEN_NODES.get(type(node))
        if kind:
            raise refuse(node, f"uses {kind}")
        if isinstance(node, ast.FunctionDef) and node is not fd and (node.args.defaults or node.args.kw_defaults):
            raise refuse(node, f"gives nested function {node.name}() default arguments")
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            n = node.id
            if n in bound or n in ALLOWED_MODULES or n in SAFE_BUILTINS:
                continue
            why = _WHY.get(n, "is not defined in the function (a module global or helper)")
            raise refuse(node, f"reads {n!r}, which {why}; allowed: its own variables, "
                               f"{', '.join(sorted(set(ALLOWED_MODULES)))} and pure builtins")
    for node in ast.walk(fd):  # names first: `datetime.now()` is refused for `datetime`, the clearer reason
        if isinstance(node, ast.Attribute):
            attr = node.attr
            if attr.startswith("_") or attr in FORBIDDEN_ATTRIBUTES or attr.startswith(_FORBIDDEN_PREFIXES):
                raise refuse(node, f"uses attribute .{attr}")
            if isinstance(node.ctx, (ast.Store, ast.Del)) and _root(node) in ALLOWED_MODULES \
                    and _root(node) not in bound:
                raise refuse(node, f"assigns to an attribute of module {_root(node)!r}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.strip().lower() in ("now", "today"):
            raise refuse(node, f"uses the string {node.value!r} (a clock reading)")
    return fd.name


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def compile_pure(source: str, name: str) -> Callable:
    """The function ``source`` defines, compiled in a namespace that holds only the allowed libraries and safe
    builtins: what runs is the checked (registry) copy, never the object the repo file defined."""
    fn_name = check(source, name)
    namespace = {"__builtins__": dict(SAFE_BUILTINS), "__name__": f"skewless_transform_{name}", **ALLOWED_MODULES}
    exec(compile(source, f"<transform {name}>", "exec"), namespace)  # noqa: S102 - the checked, sandboxed copy
    return namespace[fn_name]
