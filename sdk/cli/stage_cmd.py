"""`skewless stage promote|rollback|versions|compare`: versions of a stage side by side (skewless.stages.versions):
aliases moved as model stages are, and the A/B comparison of two versions' outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table
from .model import RepoOpt

console = Console()
app = typer.Typer(no_args_is_help=True, help="Versions of a stage: promote, roll back, compare.")
AliasOpt = typer.Option("production", "--alias", help="production | staging")


def _aliases_line(stage: str, aliases: dict) -> str:
    return f"{stage}: " + (", ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())) or "no aliases")


@app.command()
@friendly
def promote(stage: str = typer.Argument(..., help="The stage (its versions are named STAGE@v1, STAGE@v2, ...)"),
            version: str = typer.Argument(..., help="v2 (or 2), or the alias holding the version (staging)"),
            alias: str = AliasOpt, repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Make VERSION of STAGE its --alias: unpinned reads of its output (production) and VIEW@ALIAS pins read it.
    Needs `deploy` on the stage's output view when the registry declares permissions; audited."""
    from ..stages import aliases as aliases_mod
    from ..store import FeatureStore

    aliases = aliases_mod.promote(FeatureStore(repo), stage, version, alias)
    print_json({"stage": stage, "aliases": aliases}) if as_json else console.print(_aliases_line(stage, aliases),
                                                                                   highlight=False)


@app.command()
@friendly
def rollback(stage: str = typer.Argument(..., help="The stage"), alias: str = AliasOpt, repo: Path = RepoOpt,
             as_json: bool = JsonOpt):
    """Return STAGE's --alias to the version it held before its newest promotion (audited)."""
    from ..stages import aliases as aliases_mod
    from ..store import FeatureStore

    aliases = aliases_mod.rollback(FeatureStore(repo), stage, alias)
    print_json({"stage": stage, "aliases": aliases}) if as_json else console.print(_aliases_line(stage, aliases),
                                                                                   highlight=False)


@app.command()
@friendly
def versions(stage: str = typer.Argument(..., help="The stage"), repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """STAGE's versions, the view each writes, its aliases, and the history of promotions and rollbacks."""
    from ..stages import aliases as aliases_mod
    from ..stages.versions import physical
    from ..store import FeatureStore

    store = FeatureStore(repo)
    aliases = aliases_mod.current(store, stage)
    state = store._registry_state()
    rows = [{"version": v, "stage": name, "view": physical(state.get("stage", name).output, v),
             "aliases": sorted(a for a, held in aliases.items() if held == v)}
            for v, name in sorted(state.versions.versions(stage).items())]
    history = aliases_mod.history(store, stage)
    if as_json:
        print_json({"stage": stage, "versions": rows, "aliases": aliases, "history": history})
        return
    table = Table("version", "stage", "view", "aliases")
    for r in rows:
        table.add_row(f"v{r['version']}", r["stage"], r["view"], ",".join(r["aliases"]))
    print_table(console, table)
    for h in history:
        console.print(f"{h['at'][:19]} {h['action']} {h['alias']}: "
                      f"{'v' + str(h['previous']) if h['previous'] else 'none'} -> v{h['version']} by {h['by']}",
                      highlight=False)


@app.command()
@friendly
def compare(stage: str = typer.Argument(..., help="The stage"),
            a: str = typer.Argument(..., help="A version (v1, 1) or alias (production)"),
            b: str = typer.Argument(..., help="Another version or alias"),
            entities: Path = typer.Option(..., "--entities", help="The entity rows both are compared on (Parquet or "
                                          "CSV: join keys, event_timestamp, and the --labels column)"),
            model: Optional[str] = typer.Option(None, "--model", help="A downstream model reading the stage's output: "
                                                "scored with each version's outputs (batch scoring)"),
            model_version: Optional[int] = typer.Option(None, "--model-version", help="Its version (default: newest)"),
            output: Optional[str] = typer.Option(None, "--output", help="The model output compared (default: its "
                                                 "first)"),
            labels: Optional[str] = typer.Option(None, "--labels", help="The entity rows' column of true labels"),
            metric: str = typer.Option("accuracy", "--metric", help="accuracy | auc | mae | rmse (with --labels)"),
            repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """A/B of versions A and B of STAGE on the same entity rows: per output feature the rows compared, the share
    equal, means and mean absolute difference; with --model, the downstream model's predictions under each
    version (their agreement) and, with --labels, its --metric under each."""
    from ..ingest import read_file
    from ..store import FeatureStore

    store = FeatureStore(repo)
    rows = read_file(entities)
    if model is not None or labels is not None:
        from .model import _serving

        _serving()  # a ConfigError naming the extra when serving is not installed
        from skewless.serving.stage_compare import compare_stage_versions

        report = compare_stage_versions(store, stage, a, b, rows, model=model, model_version=model_version,
                                        output=output, labels=labels, metric_name=metric)
    else:
        from ..stages.compare import compare_outputs

        report = compare_outputs(store, stage, a, b, rows)
    if as_json:
        print_json(report)
        return
    console.print(f"stage {stage}: A = v{report['a']['version']} ({report['a']['view']}), B = v{report['b']['version']} "
                  f"({report['b']['view']}), {report['rows']:,} entity rows", highlight=False)
    table = Table("output", "rows both", "share equal", "mean A", "mean B", "mean |A-B|", "max |A-B|")
    for name, o in report["outputs"].items():
        table.add_row(name, *_cells(o))
    down = report.get("model")
    if down is not None:
        table.add_row(f"model {down['model']} v{down['version']}: {down['output']}", *_cells(down["agreement"]))
    print_table(console, table)
    if down is not None and "metric" in down:
        console.print(f"{down['metric']} of model {down['model']} v{down['version']} on {labels!r}: "
                      f"A {down['a']:.6g}, B {down['b']:.6g}", highlight=False)


def _cells(o: dict) -> list[str]:
    def num(x) -> str:
        return "-" if x is None else f"{x:.6g}"

    return [f"{o['both']:,}", num(o["share_equal"]), num(o.get("mean_a")), num(o.get("mean_b")),
            num(o.get("mean_abs_diff")), num(o.get("max_abs_diff"))]
