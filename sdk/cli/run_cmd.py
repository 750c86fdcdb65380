"""`skewless run STAGE`: a stage and whatever upstream of it is stale (skewless.stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table

console = Console()


@friendly
def run(stage: str = typer.Argument(..., help="The stage to run (its stale upstream stages run first)"),
        entities: Optional[str] = typer.Option(None, "--entities", help="Entity rows the stage scores or reads its "
                                               "services at: a Parquet path or glob, or a SQL query (default: the "
                                               "stage's declared entities)"),
        repo: Path = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder (holds skewless.yaml)"),
        as_json: bool = JsonOpt):
    """Run STAGE and every stale stage upstream of it, in DAG order. A stage whose inputs (definitions, history
    versions, model version) are those of a recorded run is fresh and skipped; a run killed midway resumes."""
    from ..stages import run as run_stage
    from ..store import FeatureStore

    store = FeatureStore(repo)
    results = run_stage(store, stage, entities=entities,
                        progress=None if as_json else lambda r: console.print(
                            f"{r.stage}: {r.status}" + (f", {r.rows} rows" if r.rows is not None else ""),
                            highlight=False))
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    table = Table("stage", "status", "output", "version", "rows", "model version")
    for r in results:
        table.add_row(r.stage, r.status, r.output, str(r.output_version), "-" if r.rows is None else str(r.rows),
                      "-" if r.model_version is None else str(r.model_version))
    print_table(console, table)
