"""`skewless lineage` and `skewless training-sets`: what feeds what, and the registered training sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table
from .model import RepoOpt, TargetOpt, TargetOptionsOpt, _target

console = Console()


@friendly
def lineage(name: str = typer.Argument(..., help="A node id (feature_view/NAME, model/NAME@2, endpoint/NAME), a "
                                                 "view:feature ref, or a name"),
            upstream: bool = typer.Option(False, "--upstream", help="Only what NAME is derived from"),
            downstream: bool = typer.Option(False, "--downstream", help="Only what is derived from NAME"),
            target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt,
            as_json: bool = JsonOpt):
    """The lineage of NAME, both ways by default: sources, views, transforms, features, services, training sets,
    model versions and the endpoints serving them (--json: {"nodes": [...], "edges": [...]})."""
    from .. import lineage as lineage_mod
    from ..errors import ValidationError

    if upstream and downstream:
        raise ValidationError("give --upstream or --downstream, not both (neither: both ways)")
    try:
        import skewless.serving  # noqa: F401 - endpoints come from a deploy target, which needs serving
    except ImportError:  # the core alone: definitions and training sets; model versions and endpoints need serving
        from ..store import FeatureStore

        g = lineage_mod.graph(FeatureStore(repo))
    else:
        tgt = _target(target, option, repo)
        g = lineage_mod.graph(tgt.store, models=skewless.serving.ModelRegistry(tgt.store).records(),
                              endpoints=tgt.endpoints())
    parts = [g.upstream(name)] if upstream else [g.downstream(name)] if downstream else \
        [g.upstream(name), g.downstream(name)]
    sub = lineage_mod.Graph([n for p in parts for n in p.nodes.values()], [e for p in parts for e in p.edges])
    if as_json:
        print_json(sub.to_dict())
        return
    table = Table("from", "relation", "to")
    for e in sub.to_dict()["edges"]:
        table.add_row(e["source"], e["relation"], e["target"])
    print_table(console, table)


_SPLIT_ORDER = ("train", "validation", "test", "none")  # the registry keeps a record's keys sorted


@friendly
def training_sets(name: Optional[str] = typer.Argument(None, help="A training set: show its definition"),
                  repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """List the registered training sets (or show one): features, labels, rows per split, snapshot."""
    from ..store import FeatureStore

    store = FeatureStore(repo)
    if name is not None:
        ts = store.get_training_set(name)
        print_json({"name": ts.name, **ts.to_dict()}) if as_json else console.print_json(data=ts.to_dict())
        return
    state = store._registry_state(fresh=True)
    rows = [{"name": t.name, "version": state.object_version("training_set", t.name), "features": len(t.features),
             "snapshot": t.snapshot, "feature_service": t.feature_service, "labels": t.labels,
             "split": {k: t.split_rows[k]["rows"] for k in _SPLIT_ORDER if k in (t.split_rows or {})} or None}
            for t in store.list_training_sets()]
    if as_json:
        print_json(rows)
        return
    table = Table("training set", "version", "features", "labels", "split (rows)", "feature service", "snapshot")
    for r in rows:
        table.add_row(r["name"], str(r["version"]), str(r["features"]), ", ".join(r["labels"]),
                      " ".join(f"{k}={n:,}" for k, n in (r["split"] or {}).items()), r["feature_service"] or "",
                      ", ".join(f"{v}@{n}" for v, n in r["snapshot"].items()))
    print_table(console, table)
