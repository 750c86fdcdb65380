"""`skewless model package|list|promote|serve`: model artifacts, the model registry and the model server
(``skewless.serving``, installed with the ``serving`` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table

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
    """``model.joblib`` / ``.pkl`` (scikit-learn), ``file.py:Class`` (a plain class with load()/predict()), or a
    model folder (an MLflow model: the flavours recognise it by its ``MLmodel`` file)."""
    import importlib.util

    if Path(spec).is_dir():
        return spec
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
def package(model: str = typer.Argument(..., help="model.joblib (scikit-learn), file.py:Class (python flavour) "
                                                    "or an MLflow model folder"),
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
            missing_features: str = typer.Option("serve", help="A row whose required features read NOT_FOUND or "
                                                 "EXPIRED: serve | flag | reject (422)"),
            required: list[str] = typer.Option([], help="A required view or view:feature (default: all)"),
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
                                path=out, missing_features=missing_features, required_features=required or None)
    console.print(f"Packaged [bold]{name}[/bold] ({art.manifest.flavor}) at {art.path}")
    if register:
        mv = serving.ModelRegistry(store).register(art, message=message, stage=stage)
        console.print(f"Registered [bold]{name}[/bold] version {mv.version}"
                      + (f" in stage {stage}" if stage else ""))


@app.command("list")
@friendly
def list_(name: Optional[str] = typer.Argument(None, help="A model: list its versions"), repo: Path = RepoOpt,
          as_json: bool = JsonOpt):
    """List registered models, or one model's versions with stages and lineage."""
    serving = _serving()
    from ..store import FeatureStore

    reg = serving.ModelRegistry(FeatureStore(repo))
    if name is None:
        models = [(n, len(reg.versions(n)), reg.stages(n)) for n in reg.list_models()]
        if as_json:
            print_json([{"model": n, "versions": count, "stages": stages} for n, count, stages in models])
            return
        table = Table("model", "versions", "stages")
        for n, count, stages in models:
            table.add_row(n, str(count), ", ".join(f"{s}=v{v}" for s, v in sorted(stages.items())))
        print_table(console, table)
        return
    versions = reg.versions(name)
    if as_json:
        print_json([{"version": mv.version, "stages": list(mv.stages), "flavor": mv.manifest.flavor,
                     "feature_service": mv.manifest.feature_service, "training_snapshot": mv.training_snapshot,
                     "created_at": mv.created_at, "created_by": mv.created_by, "message": mv.message,
                     "artifact_sha256": mv.artifact_sha256} for mv in versions])
        return
    table = Table("version", "stages", "flavour", "feature service", "training snapshot", "created", "by")
    for mv in versions:
        m = mv.manifest
        table.add_row(str(mv.version), ",".join(mv.stages), m.flavor, m.feature_service,
                      json.dumps(mv.training_snapshot), mv.created_at[:19], mv.created_by)
    print_table(console, table)


@app.command()
@friendly
def promote(name: str, version: int, stage: str = typer.Argument(..., help="staging | production | archived"),
            repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Put a model version in a stage (needs `deploy` on the model when the registry declares permissions)."""
    serving = _serving()
    from ..store import FeatureStore

    store = FeatureStore(repo)
    who = store.authorize("deploy", [("model", name)])
    stages = serving.ModelRegistry(store).promote(name, version, stage)
    store.audit_log.append(who, "deploy", f"model:{name}", "allowed", f"promote v{version} to {stage}")
    if as_json:
        print_json({"model": name, "stages": stages})
        return
    console.print(f"{name}: " + ", ".join(f"{s}=v{v}" for s, v in sorted(stages.items())))


@app.command()
@friendly
def serve(model_dir: Optional[Path] = typer.Option(None, help="An unpacked artifact (default /opt/ml/model)"),
          model: Optional[str] = typer.Option(None, help="Or a registered model name"),
          version: Optional[int] = typer.Option(None, help="Registered version (default: newest)"),
          stage: Optional[str] = typer.Option(None, help="Or the version in this stage"),
          contract: Optional[str] = typer.Option(None, help="sagemaker | eas | v2 | both, or a list such as "
                                                             "sagemaker,v2 (env SKEWLESS_CONTRACT)"),
          host: Optional[str] = typer.Option(None, help="Address to listen on (env SKEWLESS_HOST; default 127.0.0.1, "
                                                         "0.0.0.0 to accept other machines)"),
          port: Optional[int] = typer.Option(None, help="Default: 8080 (SageMaker) / 8000 (EAS)"),
          token: Optional[str] = typer.Option(None, help="Authorization token every route but /ping, /ready, /live "
                                                         "then requires (env SKEWLESS_SERVING_TOKEN; EAS needs one)"),
          max_body_bytes: Optional[int] = typer.Option(None, help="Largest request body, else 413 (env "
                                                       "SKEWLESS_MAX_BODY_BYTES; default 6 MB)"),
          repo: Optional[Path] = typer.Option(None, "--repo", "-r", help="Feature repo (env SKEWLESS_REPO)"),
          predict_timeout: Optional[float] = typer.Option(
              None, help="Seconds a request may take, queueing included, before a 504 (env SKEWLESS_PREDICT_TIMEOUT; "
                         "default 60; 0: no limit)"),
          missing_features: Optional[str] = typer.Option(
              None, help="serve | flag | reject: overrides the model's policy for rows missing required features "
                         "(env SKEWLESS_MISSING_FEATURES)")):
    """Serve a model over HTTP until SIGTERM (queued requests answered, prediction log flushed)."""
    _serving()
    from skewless.serving.server import ServeConfig, run

    run(ServeConfig.from_env(repo=str(repo) if repo else None, model_dir=str(model_dir) if model_dir else None,
                             model=model, version=version, stage=stage, contract=contract, host=host, port=port,
                             token=token, predict_timeout=predict_timeout, max_body_bytes=max_body_bytes,
                             missing_features=missing_features))


# -- the serving image: build (podman/buildah, or a context for docker build) and push to a registry ---------------
@app.command("build")
@friendly
def build_image(tag: str = typer.Option(..., "--tag", "-t", help="Image name, e.g. localhost/credit:1"),
                model_dir: Optional[Path] = typer.Option(None, help="Bake this artifact folder in at /opt/ml/model"),
                model: Optional[str] = typer.Option(None, help="Or bake this registered model in"),
                version: Optional[int] = typer.Option(None, help="Registered version (default: newest)"),
                stage: Optional[str] = typer.Option(None, help="Or the version in this stage"),
                extra: list[str] = typer.Option([], help="More skewless extras in the image, e.g. aws"),
                context_only: Optional[Path] = typer.Option(None, help="Only write a docker build context here"),
                repo: Path = RepoOpt):
    """Build the model server image without Docker (podman; base image made once with debootstrap). Without a
    model, mount one at /opt/ml/model at run time (as SageMaker and EAS do)."""
    _serving()
    from skewless.serving.container import build as image_build

    progress = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    if model:
        if context_only:
            raise typer.BadParameter("--context-only takes --model-dir (a registered model: download it first)")
        from ..store import FeatureStore

        info = image_build.build_registered(tag, FeatureStore(repo), model, version, stage=stage, extras=extra,
                                            progress=progress)
    else:
        reqs = _serving().ModelArtifact(model_dir).manifest.requirements if model_dir else []
        if context_only:
            ctx = image_build.build_context(context_only, model_dir=model_dir, requirements=reqs, extras=extra)
            console.print(f"wrote {ctx}: docker build -t {tag} {ctx}")
            return
        info = image_build.build_image(tag, model_dir=model_dir, requirements=reqs, extras=extra, progress=progress)
    size = f"{info['size_bytes'] / 1e6:.0f} MB" if info.get("size_bytes") else "?"
    console.print(f"Built [bold]{tag}[/bold] ({size}; base {info['base_image_s']}s, wheels {info['wheels_s']}s, "
                  f"build {info['build_s']}s)")


@app.command("push")
@friendly
def push_image(image: str = typer.Argument(..., help="Local image, e.g. localhost/credit:1"),
               dest: str = typer.Argument(..., help="registry/repository:tag, e.g. 127.0.0.1:5000/credit:1"),
               user: str = typer.Option("AWS", help="Login user (ECR's is AWS)"),
               password_stdin: bool = typer.Option(False, help="Read the token from stdin (e.g. from "
                                                   "`aws ecr get-login-password`)"),
               local_state: Optional[Path] = typer.Option(None, help="Use the token of the local OCI registry "
                                                          "(skewless.localcloud) with this state folder"),
               tls_verify: bool = typer.Option(False, help="Verify the registry's TLS (off for a loopback one)")):
    """Log in with a registry token and push the image (ECR-style: user AWS, password = token)."""
    import os
    import sys

    from skewless.serving.container import build as image_build

    if local_state is not None:
        from .local import oci_registry_credentials

        user, token = oci_registry_credentials(local_state)
    elif password_stdin:
        token = sys.stdin.read().strip()
    elif os.environ.get("SKEWLESS_REGISTRY_TOKEN"):
        token = os.environ["SKEWLESS_REGISTRY_TOKEN"]
    else:
        raise typer.BadParameter("give the token: --password-stdin, SKEWLESS_REGISTRY_TOKEN or --local-state")
    secs = image_build.push_image(image, dest, user=user, password=token, tls_verify=tls_verify)
    console.print(f"Pushed [bold]{image}[/bold] to {dest} in {secs}s")


# -- deploy targets (skewless.serving.deploy): deploy | invoke | endpoints | rollback | weights ----------------------
TargetOpt = typer.Option("local", "--target", "-t", help="local | sagemaker | eas")
TargetOptionsOpt = typer.Option([], "--option", "-o", help="Target option key=value (JSON values parsed), e.g. "
                                "bucket=B image=URI role_arn=ARN endpoint_url=URL (sagemaker), image=URI "
                                "endpoint=HOST:PORT protocol=http (eas), runtime=process|podman state_dir=DIR (local)")


def _target(kind: str, options: list[str], repo: Path):
    _serving()
    from skewless.serving.deploy import get_target

    from ..store import FeatureStore

    opts = {}
    for k, v in _pairs(options, "--option").items():
        try:  # numbers, booleans and objects (env={"K": "V"}) as JSON; anything else is a string
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    return get_target(kind, FeatureStore(repo), **opts)


def _print_endpoint(ep, as_json: bool = False) -> None:
    if as_json:
        print_json(ep)
        return
    console.print(f"[bold]{ep.name}[/bold] ({ep.target}) {ep.status}: "
                  + ", ".join(f"{v.name}={v.weight:.0%}" for v in ep.variants))


@app.command()
@friendly
def deploy(name: str = typer.Argument(..., help="Registered model"),
           version: int = typer.Argument(..., help="Model version"),
           endpoint: str = typer.Option(..., "--endpoint", "-e", help="Endpoint (EAS: service group) name"),
           weight: Optional[float] = typer.Option(None, help="Canary: this share of traffic (0-1]; default: all "
                                                  "traffic (blue-green, older variants kept at 0)"),
           target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt,
           as_json: bool = JsonOpt):
    """Deploy a registered model version to an endpoint, as a new variant v<version>. Needs `deploy` on the model
    when the registry declares permissions (docs/governance.md); audited."""
    from ..store import FeatureStore

    store = FeatureStore(repo)
    who = store.authorize("deploy", [("model", name)])  # before the target is touched: a denial does nothing
    ep = _target(target, option, repo).deploy(name, version, endpoint, weight=weight)
    store.audit_log.append(who, "deploy", f"model:{name}", "allowed",
                           f"v{version} to endpoint {endpoint}" + (f" (weight {weight})" if weight else ""))
    _print_endpoint(ep, as_json)


@app.command()
@friendly
def invoke(endpoint: str, data: str = typer.Argument(..., help='JSON body: {"instances": [...]}, a list of rows, '
                                                     'one row, or @file.json'),
           variant: Optional[str] = typer.Option(None, help="Send to this variant (v<version>) only"),
           target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt):
    """Send a prediction request to an endpoint and print the answer (with the variant that served it)."""
    from ..errors import ValidationError

    text = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"the request is not valid JSON: {exc}") from None
    instances = body if isinstance(body, (list, dict)) else [body]
    typer.echo(json.dumps(_target(target, option, repo).invoke(endpoint, instances, variant=variant)))


@app.command()
@friendly
def endpoints(target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt,
              as_json: bool = JsonOpt):
    """List a target's endpoints with their variants and traffic weights."""
    eps = _target(target, option, repo).endpoints()
    if as_json:
        print_json(eps)
        return
    table = Table("endpoint", "status", "variants (weight)")
    for ep in eps:
        table.add_row(ep.name, ep.status, ", ".join(f"{v.name}={v.weight:.0%}" for v in ep.variants))
    print_table(console, table)


@app.command()
@friendly
def rollback(endpoint: str, target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt,
             as_json: bool = JsonOpt):
    """Undo the endpoint's last deploy: its variants and weights as they were before it."""
    _print_endpoint(_target(target, option, repo).rollback(endpoint), as_json)


@app.command()
@friendly
def weights(endpoint: str, weight: list[str] = typer.Argument(..., help="variant=weight, e.g. v1=0.9 v2=0.1 "
                                                             "(unnamed variants get 0; normalized to sum 1)"),
            target: str = TargetOpt, option: list[str] = TargetOptionsOpt, repo: Path = RepoOpt,
            as_json: bool = JsonOpt):
    """Set the traffic weights of an endpoint's variants."""
    from ..errors import ValidationError

    try:
        parsed = {k: float(v) for k, v in _pairs(weight, "weight").items()}
    except ValueError as exc:
        raise ValidationError(f"weights must be numbers: {exc}") from None
    _print_endpoint(_target(target, option, repo).set_weights(endpoint, parsed), as_json)
