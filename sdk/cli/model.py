"""`skewless model package|list|promote|serve`: model artifacts, the model registry and the model server
(``skewless.serving``, installed with the ``serving`` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import friendly

app = typer.Typer(no_args_is_help=True, help="Package, register, promote and serve models.")
console = Console()
RepoOpt = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder (holds skewless.yaml)")


def _serving():
    try:
        import skewless.serving as serving
    except ImportError as exc:
        from ..errors import ConfigError

        raise ConfigError(f'model serving is not installed ({exc.name}); install it with: '
                          f'pip install "skewless[serving]"') from exc
    return serving


def _load_model(spec: str):
    """``model.joblib`` / ``.pkl`` (scikit-learn), or ``file.py:Class`` (a plain class with load()/predict())."""
    import importlib.util

    path, _, cls = spec.partition(":")
    if cls:
        name = Path(path).stem
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None:
            raise typer.BadParameter(f"cannot import {path}")
        module = importlib.util.module_from_spec(mod_spec)
        import sys

        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
        return getattr(module, cls)
    import joblib

    if not Path(path).exists():
        raise typer.BadParameter(f"{path} does not exist")
    return joblib.load(path)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{what} {item!r}: expected key=value")
        out[k.strip()] = v.strip()
    return out


@app.command()
@friendly
def package(model: str = typer.Argument(..., help="model.joblib (scikit-learn) or file.py:Class (python flavour)"),
            name: str = typer.Option(..., help="Model name"),
            service: str = typer.Option(..., help="The feature service the model was trained on"),
            training_set: Optional[Path] = typer.Option(None, help="Training set Parquet written by "
                                                        "get-historical --out (its .snapshot.json is the lineage)"),
            snapshot: Optional[str] = typer.Option(None, help='Or the snapshot as JSON: {"view": version, ...}'),
            key_lookup: list[str] = typer.Option([], help="join_key=view:feature, read instead of requested"),
            output: list[str] = typer.Option([], help="name=dtype, for python-flavour models"),
            method: Optional[str] = typer.Option(None, help="scikit-learn: predict or predict_proba"),
            out: Optional[Path] = typer.Option(None, help="Also keep the artifact folder here"),
            register: bool = typer.Option(True, help="Register it as a new version in the model registry"),
            stage: Optional[str] = typer.Option(None, help="Put the new version in this stage"),
            message: str = typer.Option("", "-m", help="Note stored with the version"),
            repo: Path = RepoOpt):
    """Package a trained model with its feature service, signature, requirements and training snapshot."""
    serving = _serving()
    from ..store import FeatureStore

    if training_set is not None:
        snap_file = training_set.with_name(training_set.name + ".snapshot.json")
        if not snap_file.exists():
            raise typer.BadParameter(f"{snap_file} not found (written beside the training set by --out)")
        snap = json.loads(snap_file.read_text())
    elif snapshot:
        snap = json.loads(snapshot)
    else:
        raise typer.BadParameter("give --training-set or --snapshot: the training data is the model's lineage")
    store = FeatureStore(repo)
    outputs = list(_pairs(output, "--output").items()) or None
    art = serving.package_model(_load_model(model), name=name, store=store, feature_service=service, snapshot=snap,
                                key_lookups=_pairs(key_lookup, "--key-lookup"), outputs=outputs, method=method,
                                path=out)
    console.print(f"Packaged [bold]{name}[/bold] ({art.manifest.flavor}) at {art.path}")
    if register:
        mv = serving.ModelRegistry(store).register(art, message=message, stage=stage)
        console.print(f"Registered [bold]{name}[/bold] version {mv.version}"
                      + (f" in stage {stage}" if stage else ""))


@app.command("list")
@friendly
def list_(name: Optional[str] = typer.Argument(None, help="A model: list its versions"), repo: Path = RepoOpt):
    """List registered models, or one model's versions with stages and lineage."""
    serving = _serving()
    from ..store import FeatureStore

    reg = serving.ModelRegistry(FeatureStore(repo))
    if name is None:
        table = Table("model", "versions", "stages")
        for n in reg.list_models():
            stages = reg.stages(n)
            table.add_row(n, str(len(reg.versions(n))), ", ".join(f"{s}=v{v}" for s, v in sorted(stages.items())))
        console.print(table)
        return
    table = Table("version", "stages", "flavour", "feature service", "training snapshot", "created", "by")
    for mv in reg.versions(name):
        m = mv.manifest
        table.add_row(str(mv.version), ",".join(mv.stages), m.flavor, m.feature_service,
                      json.dumps(mv.training_snapshot), mv.created_at[:19], mv.created_by)
    console.print(table)


@app.command()
@friendly
def promote(name: str, version: int, stage: str = typer.Argument(..., help="staging | production | archived"),
            repo: Path = RepoOpt):
    """Put a model version in a stage."""
    serving = _serving()
    from ..store import FeatureStore

    stages = serving.ModelRegistry(FeatureStore(repo)).promote(name, version, stage)
    console.print(f"{name}: " + ", ".join(f"{s}=v{v}" for s, v in sorted(stages.items())))


@app.command()
@friendly
def serve(model_dir: Optional[Path] = typer.Option(None, help="An unpacked artifact (default /opt/ml/model)"),
          model: Optional[str] = typer.Option(None, help="Or a registered model name"),
          version: Optional[int] = typer.Option(None, help="Registered version (default: newest)"),
          stage: Optional[str] = typer.Option(None, help="Or the version in this stage"),
          contract: Optional[str] = typer.Option(None, help="sagemaker | eas | both (env SKEWLESS_CONTRACT)"),
          host: str = typer.Option("0.0.0.0", help="Address to listen on"),
          port: Optional[int] = typer.Option(None, help="Default: 8080 (SageMaker) / 8000 (EAS)"),
          token: Optional[str] = typer.Option(None, help="EAS Authorization token (env SKEWLESS_SERVING_TOKEN)"),
          repo: Optional[Path] = typer.Option(None, "--repo", "-r", help="Feature repo (env SKEWLESS_REPO)")):
    """Serve a model over HTTP until SIGTERM (queued requests answered, prediction log flushed)."""
    _serving()
    from skewless.serving.server import ServeConfig, run

    run(ServeConfig.from_env(repo=str(repo) if repo else None, model_dir=str(model_dir) if model_dir else None,
                             model=model, version=version, stage=stage, contract=contract, host=host, port=port,
                             token=token))
