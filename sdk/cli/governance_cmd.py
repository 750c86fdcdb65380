"""`skewless forget` and `skewless retention run`: erasure of an entity, history and prediction-log retention
(skewless.forget, skewless.retention; docs/governance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import JsonOpt, err, friendly, print_json
from .model import RepoOpt

console = Console()
app = typer.Typer(no_args_is_help=True, help="History and prediction-log retention")


def _typed(state, entity: str, texts: list[str]) -> list[tuple]:
    """Key texts (``123``; ``k1=v1,k2=v2`` for an entity with several join keys) as tuples of the join keys'
    dtypes (as the entity's views declare them)."""
    from .. import dtypes
    from ..errors import ValidationError
    from ..forget import views_of

    ent = state.get("entity", entity)
    views = views_of(state, entity)
    dts = views[0].join_key_dtypes if views else {}
    out = []
    for text in texts:
        if len(ent.join_keys) == 1 and "=" not in text:
            parts = {ent.join_keys[0]: text}
        else:
            parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        if set(parts) != set(ent.join_keys):
            raise ValidationError(f"key {text!r}: entity {entity!r} has join keys {ent.join_keys} (give k=v,...)")
        key = []
        for k in ent.join_keys:
            dt = dts.get(k)
            key.append(int(parts[k]) if dt in (dtypes.Int32, dtypes.Int64) else parts[k])
        out.append(tuple(key))
    return out


@friendly
def forget(entity: str = typer.Argument(..., help="The entity whose rows to erase (e.g. customer)"),
           keys: Optional[list[str]] = typer.Argument(None, help="Its keys: values of its join key, or k1=v1,k2=v2 "
                                                                 "for an entity with several"),
           keys_file: Optional[Path] = typer.Option(None, "--keys-file", help="A file of keys, one per line"),
           purge_now: bool = typer.Option(False, "--purge-now", help="Vacuum the older versions holding the rows "
                                          "now, even before the views' history retention has passed"),
           repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Erase an entity's rows from every offline history (prediction logs included), the online store and the
    aggregation tiles; resumable (run it again with the same keys to complete it); reports what was removed and the
    registered training sets that held the entity."""
    from ..store import FeatureStore

    texts = list(keys or [])
    if keys_file is not None:
        texts += [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
    fs = FeatureStore(repo)
    tuples = _typed(fs._registry_state(fresh=True), entity, texts)
    report = fs.forget(entity, tuples, purge_now=purge_now,
                       progress=None if as_json else lambda m: err.print(m, highlight=False))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"forget request {report.request}: {report.keys} key(s) of {report.entity}"
                  f"{' (resumed)' if report.resumed else ''}", highlight=False)
    for view in report.offline_rows:
        console.print(f"  {view}: {report.offline_rows[view]} history row(s), {report.online_entities[view]} online; "
                      f"purge {report.purged[view]}", highlight=False)
    console.print(f"  training sets that held the entity: {', '.join(report.training_sets) or 'none'}",
                  highlight=False)
    rows = ", ".join(f"{ref}: {n}" for ref, n in report.training_rows.items())
    console.print(f"  leakage-guard rows removed: {rows or 'none'}", highlight=False)
    if report.training_rows_not_erasable:
        console.print(f"  leakage-guard records that cannot tell the entity's rows (older format, more join keys): "
                      f"{', '.join(report.training_rows_not_erasable)}; delete them to forget it there",
                      highlight=False)
    if not report.complete:
        console.print("  purges pending: `skewless retention run` (or this command again) completes them after the "
                      "time shown", highlight=False)


@app.command("run")
@friendly
def run(views: Optional[list[str]] = typer.Argument(None, help="Views to apply retention to (default: all)"),
        prediction_log_days: Optional[float] = typer.Option(None, "--prediction-log-days",
                                                            help="Delete prediction-log rows older than this"),
        repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Expire and vacuum history versions older than each view's history_retention (keeping every version a
    registered training set pins), trim prediction logs, and complete pending forget purges."""
    from datetime import timedelta

    from ..store import FeatureStore

    report = FeatureStore(repo).retention_run(
        views, prediction_log_retention=None if prediction_log_days is None else timedelta(days=prediction_log_days),
        progress=None if as_json else lambda m: err.print(m, highlight=False))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(json.dumps(report.to_dict(), indent=2), highlight=False)
