"""What every CLI command shares: the error wrapper."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import SkewlessError

err = Console(stderr=True)


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
