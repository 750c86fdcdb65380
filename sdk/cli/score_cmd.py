"""`skewless score MODEL`: batch scoring of a registered model version (skewless.serving.batch_score) over an
entity file or a window's entities, its predictions written to a view in the prediction log's columns."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import JsonOpt, friendly, print_json
from .model import RepoOpt, _serving
from .monitor_cmd import ModelArg, StageOpt, VersionOpt

console = Console()


@friendly
def score(model: str = ModelArg, entities: Optional[Path] = typer.Option(
              None, "--entities", help="Entity rows to score (Parquet or CSV): the model's request keys, "
                                       "event_timestamp, its request fields"),
          start: Optional[str] = typer.Option(None, "--start", help="Score the entities with rows from this time "
                                              "(ISO 8601)..."),
          end: Optional[str] = typer.Option(None, "--end", help="...to this time, as of this time"),
          version: Optional[int] = VersionOpt, stage: Optional[str] = StageOpt,
          output: Optional[str] = typer.Option(None, "--output", help="Write the predictions to this view "
                                               "(declared when absent; a rerun of the same job writes nothing)"),
          out: Optional[Path] = typer.Option(None, "--out", help="Also write the scored rows to this Parquet file"),
          repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Score MODEL's version over entity rows (--entities FILE) or the entities with rows in a window (--start,
    --end), reading features through the training-set path on the configured engine; rows in the prediction
    log's columns, written to --output VIEW."""
    from ..errors import ValidationError
    from ..ingest import read_file
    from ..store import FeatureStore

    if version is not None and stage is not None:
        raise ValidationError("give --version or --stage, not both")
    if (entities is None) == (start is None and end is None):
        raise ValidationError("give --entities FILE, or a window: --start and --end")
    _serving()  # a ConfigError naming the extra when serving is not installed
    from skewless.serving.batch_score import score as run

    store = FeatureStore(repo)
    rows = read_file(entities) if entities is not None else None
    result = run(store, model, rows, version=version, stage=stage, output_view=output, start=start, end=end)
    if out is not None:
        import pyarrow.parquet as pq

        pq.write_table(result.table, out)
    if as_json:
        print_json(result.to_dict())
        return
    where = f" to view {result.view}" if result.view else ""
    done = " (already written: nothing appended)" if result.already_written else \
        f", {result.written:,} written{where}" if result.view else ""
    console.print(f"model {result.model} version {result.version}: {result.rows:,} rows scored{done}",
                  highlight=False)
