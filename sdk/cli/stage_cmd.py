"""`skewless stage promote|rollback|versions|compare`: versions of a stage side by side (skewless.stages.versions):
aliases moved as model stages are, and the A/B comparison of two versions' outputs."""

from __future__ import annotations

from pathlib import Path

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
    from ..stages import promote as promote_mod
    from ..store import FeatureStore

    aliases = promote_mod.promote(FeatureStore(repo), stage, version, alias)
    print_json({"stage": stage, "aliases": aliases}) if as_json else console.print(_aliases_line(stage, aliases),
                                                                                   highlight=False)


@app.command()
@friendly
def rollback(stage: str = typer.Argument(..., help="The stage"), alias: str = AliasOpt, repo: Path = RepoOpt,
             as_json: bool = JsonOpt):
    """Return STAGE's --alias to the version it held before its newest promotion (audited)."""
    from ..stages import promote as promote_mod
    from ..store import FeatureStore

    aliases = promote_mod.rollback(FeatureStore(repo), stage, alias)
    print_json({"stage": stage, "aliases": aliases}) if as_json else console.print(_aliases_line(stage, aliases),
                                                                                   highlight=False)


@app.command()
@friendly
def versions(stage: str = typer.Argument(..., help="The stage"), repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """STAGE's versions, the view each writes, its aliases, and the history of promotions and rollbacks."""
    from ..stages import promote as promote_mod
    from ..stages.versions import physical
    from ..store import FeatureStore

    store = FeatureStore(repo)
    aliases = promote_mod.aliases(store, stage)
    state = store._registry_state()
    rows = [{"version": v, "stage": name, "view": physical(state.get("stage", name).output, v),
             "aliases": sorted(a for a, held in aliases.items() if held == v)}
            for v, name in sorted(state.versions.versions(stage).items())]
    history = promote_mod.history(store, stage)
    if as_json:
        print_json({"stage": stage, "versions": rows, "aliases": aliases, "history": history})
        return
    table = Table("version", "stage", "view", "aliases")
    for r in rows:
        table.add_row(f"v{r['version']}", r["stage"], r["view"], ",".join(r["aliases"]))
    print_table(console, table)
    for h in history:
        console.print(f"{h['at'][:19]} {h['action']} {h['alias']}: v{h['previous']} -> v{h['version']} by {h['by']}",
                      highlight=False)
