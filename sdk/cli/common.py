"""What every CLI command shares: the error wrapper, `--json` output and tables that never cut a name."""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.markup import escape

from ..errors import SkewlessError

err = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON document on stdout (for scripts)")


def friendly(fn):
    """Turn SkewlessError into `error: <reason>` and exit code 1 (stack traces are for bugs only)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SkewlessError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # escaped: a message is text, not markup (`pip install "skewless[local]"` would lose its "[local]")
            err.print(f"[red]error:[/red] {type(exc).__name__}: {escape(first)}", highlight=False, soft_wrap=True)
            for line in str(exc).splitlines()[1:]:
                err.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


def _plain(value: Any) -> Any:
    """json.dumps' fallback: dataclasses as objects, dates as ISO 8601, numpy scalars as numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def print_json(data: Any) -> None:
    """One JSON document on stdout, unstyled (rich would colour and wrap it)."""
    typer.echo(json.dumps(data, default=_plain, indent=2, ensure_ascii=False))


def print_table(console: Console, table: Table) -> None:
    """On a terminal the table fits the window. Elsewhere (a pipe, a file, a CI log) there is no window to fit:
    rich would squeeze it into 80 columns and cut names to `loan_fe…`, so it is printed at its natural width."""
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(file=console.file, width=1_000_000, color_system=None, highlight=False)
    wide.print(table)
