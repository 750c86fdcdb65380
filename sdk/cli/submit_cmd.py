"""`skewless submit`: run a training-set or materialize job where skewless.yaml's `submit:` says (EMR Serverless),
wait for it with progress, and print its result. Ctrl-C cancels the run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import JsonOpt, err, friendly, print_json

app = typer.Typer(no_args_is_help=True, help="Run a job on the cluster skewless.yaml's submit: section names.")
RepoOpt = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder (holds skewless.yaml)")
WaitOpt = typer.Option(True, "--wait/--no-wait", help="Wait for the run to end (default) or print its id and return")
LogsOpt = typer.Option(False, "--logs", help="Print the driver's stdout when the run ends (--json: as driver_stdout)")


def _submit(repo: Path, kind: str, args: dict, name: Optional[str], wait: bool, logs: bool, as_json: bool) -> None:
    from ..jobs import JobSpec, portable_config, submitter

    target = submitter(repo)
    _authorize(repo, kind, args)
    spec = JobSpec(kind, portable_config(repo), args)
    run_id = target.start(spec, name)
    if not wait:
        if as_json:
            print_json({"job_run_id": run_id, "state": "SUBMITTED"})
        else:
            typer.echo(run_id)
        return
    err.print(f"job run {run_id} submitted", highlight=False)

    def progress(state: str, details: str | None) -> None:
        err.print(f"  {state}" + (f": {details}" if details else ""), highlight=False)
    try:
        outcome = target.wait(run_id, progress)
    except KeyboardInterrupt:
        err.print(f"cancelled job run {run_id}", highlight=False)
        raise typer.Exit(130) from None
    driver_log = target.logs(run_id) if logs else None
    if as_json:
        print_json({"job_run_id": outcome.job_run_id, "state": outcome.state, "result": outcome.result,
                    **({"driver_stdout": driver_log} if logs else {})})
        return
    if logs:
        typer.echo(driver_log or "(no driver log)")
    typer.echo(f"job run {run_id}: {outcome.state}" + (f" {outcome.result}" if outcome.result else ""))


def _authorize(repo: Path, kind: str, args: dict) -> None:
    """The submitter's permission, checked here (the cluster's job runs with the cluster's role): ``read_offline``
    for a training set, ``ingest`` on each view a materialize writes. A denial is audited, nothing is submitted."""
    from ..store import FeatureStore

    store = FeatureStore(repo)
    if kind == "training-set":
        store.authorize_read(args["features"])
    else:
        views = args.get("views") or [v.name for v in store.list_feature_views() if v.online]
        store.authorize("ingest", [("view", v) for v in views])


@app.command("training-set")
@friendly
def training_set(entities: str = typer.Option(..., help="Entity rows: a Parquet URL/path or glob the cluster reads"),
                 to: str = typer.Option(..., "--to", help="Where the job writes the training set (Parquet URL)"),
                 features: Optional[str] = typer.Option(None, help="view:feature,..."),
                 service: Optional[str] = typer.Option(None, help="Feature service name"),
                 full_feature_names: bool = False,
                 point_in_time: str = typer.Option("event", help="event | available"),
                 name: Optional[str] = typer.Option(None, help="Name of the job run"),
                 repo: Path = RepoOpt, wait: bool = WaitOpt, logs: bool = LogsOpt, as_json: bool = JsonOpt):
    """Build a point-in-time training set on the cluster and write it to --to."""
    if bool(features) == bool(service):
        raise typer.BadParameter("give exactly one of --features view:f1,view:f2 or --service NAME")
    chosen = service if service else [f.strip() for f in features.split(",") if f.strip()]
    _submit(repo, "training-set", {"entities": entities, "features": chosen, "destination": to,
                                   "full_feature_names": full_feature_names, "point_in_time": point_in_time},
            name, wait, logs, as_json)


@app.command("materialize")
@friendly
def materialize(end: str = typer.Argument(..., help="End instant (ISO 8601)"),
                start: Optional[str] = typer.Option(None, help="Start instant; without it: incremental from each "
                                                               "view's last materialized end"),
                views: Optional[str] = typer.Option(None, help="Comma-separated views"),
                name: Optional[str] = typer.Option(None, help="Name of the job run"),
                repo: Path = RepoOpt, wait: bool = WaitOpt, logs: bool = LogsOpt, as_json: bool = JsonOpt):
    """Materialize views to the online store on the cluster."""
    args = {"end": end, "views": views.split(",") if views else None}
    if start:
        args["start"] = start
    _submit(repo, "materialize" if start else "materialize-incremental", args, name, wait, logs, as_json)
